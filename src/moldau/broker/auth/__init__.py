"""Who is on the other end of a connection, and what they may do.

``principal``/``session`` describe an authenticated connection; the SASL mechanisms, the ACL
authorizer and TLS set-up live in their own modules here. Credentials, ACLs and quotas are
stored by ``moldau.cluster.security_store`` so that a single node and a cluster keep them the
same way.
"""
