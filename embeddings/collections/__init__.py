"""Collections over HTTP: a tenant's named sets of faces (create, list, describe, change, delete).

The store keeps what every write needs (embeddings/store/collections.py: find
by name, the default collection, the model a collection is tied to); this
package is what a tenant manages them with.
"""
