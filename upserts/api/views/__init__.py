"""The API's views, one module per resource: validate the request, call a service or a
selector, answer.

Service exceptions are not caught here: ``upserts.api.errors`` turns each into its HTTP
status and the one error shape. Every view needs a staff account and the role permission it
names in ``required_permissions`` (see ``upserts.api.permissions``).
"""
