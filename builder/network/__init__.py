"""pydock's container networking: network records and IP allocation in the store (store, ipam), network
namespaces (netns), the Linux bridge and veth pairs (links, through pyroute2), the pydock nftables table
(firewall), the files docker writes for a container (etcfiles), and the endpoint lifecycle that joins
them for a starting or stopping container (endpoints). pyroute2 is imported only by the modules that
talk netlink, and only when a container or verb needs it."""
