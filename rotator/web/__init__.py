"""The daemon's HTTP listeners (metrics, admin API, intake page): one runner, one web config.

- :mod:`rotator.web.server`: ``bind`` and ``serve(app, sock, web, stop)``, the runner every
  listener uses (TLS, keep-alive, deadlines for idle and slow clients, no connection cap).
- :mod:`rotator.web.config`: ``server.web_config_file``, exporter-toolkit's format.
- :mod:`rotator.web.watch`: the settings in force, re-read when the files change.
- :mod:`rotator.web.tls`, :mod:`rotator.web.auth`: server TLS contexts; basic auth (bcrypt).
- :mod:`rotator.web.client`: the admin clients' side of TLS (and what a refusal means).

The metrics listener's app is :mod:`rotator.adapters.metrics.exposition`.
"""
