"""The web dashboard: a Flask app factory (:func:`pamcore.web.app.create_app`) with one
blueprint per area, served by ``pamcore run`` or ``pamcore web``."""
