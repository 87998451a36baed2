"""The OpenAPI 3.1 document, generated from the same route declarations that serve requests."""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel

from control_plane.http import Router

_PARAM = re.compile(r"{([^}:]+)(?::[^}]+)?}")
_DESCRIPTIONS = {
    200: "OK",
    201: "Created",
    204: "No content",
    400: "Validation failed",
    401: "Authentication required",
    403: "Forbidden",
    404: "Not found",
    409: "Conflict",
    413: "Payload too large",
    429: "Rate limited",
}

DETAILS_SCHEMA: dict[str, Any] = {
    "type": "array",
    "items": {
        "type": "object",
        "properties": {
            "field": {"type": "string"},
            "code": {"type": "string"},
            "message": {"type": "string"},
        },
    },
}
ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message", "details", "request_id"],
            "properties": {
                "code": {"type": "string"},
                "message": {"type": "string"},
                "details": DETAILS_SCHEMA,
                "request_id": {"type": "string"},
            },
        }
    },
}
# Airborne routes: the seed's {"error": "<message>"} with our fields beside it (DESIGN.md 5b).
AIRBORNE_ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["error", "code", "details", "request_id"],
    "properties": {
        "error": {"type": "string", "description": "The message"},
        "code": {"type": "string"},
        "details": DETAILS_SCHEMA,
        "request_id": {"type": "string"},
    },
}
# DevCycle routes: DevCycle's (NestJS) body, ``message`` a list of strings for validation errors.
DEVCYCLE_ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["statusCode", "message", "error", "details", "request_id"],
    "properties": {
        "statusCode": {"type": "integer"},
        "message": {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]},
        "error": {"type": "string", "description": "The status's reason phrase"},
        "details": DETAILS_SCHEMA,
        "request_id": {"type": "string"},
    },
}
ERROR_REFS = {"envelope": "ErrorEnvelope", "airborne": "AirborneError", "devcycle": "DevCycleError"}


def _schema(model: type[BaseModel], components: dict[str, Any]) -> dict[str, Any]:
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    for name, definition in schema.pop("$defs", {}).items():
        components[name] = definition
    components[model.__name__] = schema
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def document(routers: list[Router], title: str, version: str) -> dict[str, Any]:
    components: dict[str, Any] = {
        "ErrorEnvelope": ERROR_SCHEMA,
        "AirborneError": AIRBORNE_ERROR_SCHEMA,
        "DevCycleError": DEVCYCLE_ERROR_SCHEMA,
    }
    paths: dict[str, Any] = {}
    for router in routers:
        for spec in router.specs:
            params: list[dict[str, Any]] = [
                {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
                for name in _PARAM.findall(spec.path)
            ]
            params += [
                {"name": h, "in": "header", "required": h in spec.required_headers, "schema": {"type": "string"}}
                for h in spec.headers
            ]
            if spec.query is not None:
                qschema = spec.query.model_json_schema()
                required = set(qschema.get("required", []))
                for name, prop in qschema.get("properties", {}).items():
                    params.append({"name": name, "in": "query", "required": name in required, "schema": prop})
            # ``responses`` may list other success statuses (e.g. 200 beside a 201 create) besides errors.
            successes = {spec.status, *(c for c in spec.responses if c < 400)}
            errors = {400, *(c for c in spec.responses if c >= 400)}
            if spec.auth:
                errors |= {401, 403, 404}
            if spec.keys is not None:
                errors |= {429}  # the key API's rate limits
            success_body: dict[str, Any] = (
                {} if spec.response is None else {"schema": _schema(spec.response, components)}
            )
            responses: dict[str, Any] = {
                str(code): {
                    "description": _DESCRIPTIONS.get(code, "OK"),
                    "content": {"application/json": success_body if code == spec.status else {}},
                }
                for code in sorted(successes)
            }
            for code in sorted(errors):
                responses[str(code)] = {
                    "description": _DESCRIPTIONS.get(code, "Error"),
                    "content": {
                        "application/json": {
                            "schema": {"$ref": f"#/components/schemas/{ERROR_REFS.get(spec.shape, 'ErrorEnvelope')}"}
                        }
                    },
                }
            op: dict[str, Any] = {
                "operationId": spec.handler.__name__,
                "summary": spec.summary,
                "tags": [spec.tag],
                "parameters": params,
                "responses": responses,
            }
            if spec.body is not None:
                op["requestBody"] = {
                    "required": True,
                    "content": {"application/json": {"schema": _schema(spec.body, components)}},
                }
            if spec.auth:
                op["security"] = [{"bearer": []}, {"apiKey": []}]
            if spec.keys is not None:
                # Only these API keys open the route (no JWT): the authorization matrix over the
                # admin API skips it; the key API's scope matrix covers it.
                op["x-key-api"] = spec.keys.api
                op["x-key-scopes"] = list(spec.keys.scopes)
            paths.setdefault(_PARAM.sub(lambda m: "{" + m.group(1) + "}", spec.path), {})[spec.method.lower()] = op
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version},
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "description": "JWT from /users/login or an API key"},
                "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
            },
        },
    }
