"""pydock networking: network namespaces, bridges, addresses, name files and port publishing."""
