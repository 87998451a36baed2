"""DevCycle's SDK routes on the edge, for DevCycle's own SDKs with only their base URLs changed.

* :mod:`server.devcycle.config`: the config local-bucketing server SDKs poll
  (``/config/v2/server/{sdkKey}.json``) and the realtime stream it points them at;
* :mod:`server.devcycle.bucketing`: bucketed configs per user: ``/v1/sdkConfig`` for client SDKs
  and the cloud bucketing API (``/v1/variables``, ``/v1/variables/{key}``, ``/v1/features``);
* :mod:`server.devcycle.events`: what the SDKs post (``/v1/events``, ``/v1/events/batch``,
  ``/v1/track``), checked and handed to the edge's intake like every SDK event;
* :mod:`server.devcycle.users`: DevCycle users from query strings, bodies and OpenFeature contexts;
* :mod:`server.devcycle.document`: what the edge derives from an environment's ``devcycle`` section.
"""
