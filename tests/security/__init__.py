"""Security suite: every hostile input and auth attack in one place, against the real processes
(``conftest.py``: control plane, two 2-worker edges on two data dirs, ``sync``, redis-server).

Hostile input
    * every edge parser fuzzed (hypothesis): queries, headers, bodies ........ test_edge_fuzz.py
      (the control plane's API: tests/control_plane/test_fuzz_openapi.py; the evaluator:
      tests/evaluator/test_safety.py)
    * deeply nested JSON, bodies over the limit, 1 MB query, 10k params,
      duplicate params, huge headers ......................................... test_oversized_input.py
    * JSON Logic bombs and rule compile bombs through the admin API ......... test_rule_bombs.py
    * slowloris: slow headers, slow bodies, idle connections ................ test_slowloris.py

Auth
    * SDK key classes cannot be mixed; admin and SDK credentials apart ...... test_key_classes.py
    * revoked / rotated SDK keys fail on every worker of both hosts ......... test_revocation.py
    * constant-time comparison (AST scan + timing on the edge) .............. test_constant_time.py
    * cross-organisation existence (same status, body and timing) ........... test_cross_org.py
      (every write route x role x scope: tests/control_plane/test_authorization_matrix.py)
    * JWT wrong algorithm / expired / tampered; API-key scopes, revocation .. test_admin_auth.py
      (in process: tests/control_plane/routes/test_users.py)
    * login brute force, user enumeration by timing ......................... test_login.py
    * secrets never in logs, never stored in plaintext ...................... test_secrets_in_logs.py

``SECURITY_FUZZ_EXAMPLES=1000 pytest tests/security/test_edge_fuzz.py`` fuzzes deeper.
"""
