"""Migration scripts, one per schema revision (a package so that they ship in the wheel)."""
