"""Subjects (persons) as first-class: list and describe them, rename, merge, move faces between them.

A subject is the tenant's own id for a person, carried by its faces (and by
the assets indexed for it) within one collection; it exists while it has
faces. Every change is audited and takes the tenant's next gallery
generation, so searches answer with the new labels at once.
"""
