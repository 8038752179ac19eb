"""pamcore services: the one API the CLI, the web, the REST API and the proxies call.

Each function takes the core, the caller's unit of work (``with core.unit() as db``) and
the acting user, enforces every rule itself and audits what it did.
"""
