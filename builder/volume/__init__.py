"""Volumes: named and anonymous local volumes under STORE/volumes (store), and the image content copied
into an empty volume at its first mount (copyup)."""
