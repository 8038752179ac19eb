"""pamcore-ticket-validator: an example decision plugin checking ticket numbers."""

__version__ = "0.1.0"
