"""Sign in to pamcore with an LDAP or Active Directory account."""
