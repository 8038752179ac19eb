"""The core's own behaviour, written as ordinary plugins so others can extend or veto it."""
