"""pydock pull, push, login, logout and search: the verbs that talk to a registry."""

from __future__ import annotations

import argparse
import getpass
import sys

from builder.cli.formatting import print_table
from builder.cli.shared import UsageError, open_store
from builder.errors import BuildError


def _say(quiet: bool):
    def say(line: str) -> None:
        if not quiet:
            print(line, flush=True)
    return say


def cmd_pull(args) -> int:
    from builder.image.platform import Platform
    from builder.registry.pull import pull
    from builder.registry.reference import parse

    platform = Platform.parse(args.platform) if args.platform else None
    if args.all_tags:
        from builder.registry.client import Registry
        from builder.registry.reference import parse_repository

        repo = parse_repository(args.name)
        registry = Registry(repo.domain)
        registry.want(repo.path, "pull")
        r = registry.request("GET", f"/v2/{repo.path}/tags/list", what=f"tags of {repo.familiar()}")
        try:
            tags = sorted(r.json().get("tags") or [])
        except (ValueError, AttributeError):
            raise BuildError(f"{repo.familiar()}: the tag list is not JSON") from None
        if not tags:
            raise BuildError(f"{repo.familiar()} has no tags")
        refs = [repo.with_tag(tag) for tag in tags]
    else:
        registry = None
        refs = [parse(args.name)]
    store = open_store(args)
    for ref in refs:
        result = pull(store, ref, platform=platform, say=_say(args.quiet), registry=registry,
                      bar=not args.quiet and sys.stdout.isatty() and sys.stderr.isatty())
        if not args.quiet:
            shown = result.name or ref.familiar()
            print(f"Status: {'Downloaded newer image' if result.downloaded else 'Image is up to date'} for {shown}")
    print(str(refs[0].with_tag(None)) if args.all_tags else str(refs[0]))
    return 0


def cmd_push(args) -> int:
    from builder.registry.client import Registry
    from builder.registry.push import push
    from builder.registry.reference import parse

    store = open_store(args)
    if args.all_tags:
        from builder.image.store import split_ref
        from builder.registry.reference import parse_repository

        repo = parse_repository(args.name)
        tags = sorted({split_ref(name)[1] for names, _ in store.images() for name in names
                       if split_ref(name)[0] == repo.familiar_name})
        if not tags:
            raise BuildError(f"no image in the store is named {repo.familiar_name}")
        refs = [repo.with_tag(tag) for tag in tags]
    else:
        refs = [parse(args.name)]
        if refs[0].digest:
            raise UsageError(f"cannot push a digest reference: {args.name}")
    registry = Registry(refs[0].domain)
    for ref in refs:
        push(store, ref, say=_say(args.quiet), registry=registry)
    return 0


def cmd_login(args) -> int:
    from builder.registry import auth
    from builder.registry.client import Registry
    from builder.registry.reference import registry_host

    host = registry_host(args.server or "docker.io")
    username = args.username
    if args.password_stdin:
        if not username:
            raise UsageError("--password-stdin needs --username")
        password = sys.stdin.read().rstrip("\r\n")
    elif args.password is not None:
        print("WARNING! Using --password via the CLI is insecure. Use --password-stdin.", file=sys.stderr)
        password = args.password
    else:
        if not sys.stdin.isatty():
            raise UsageError("cannot prompt for credentials without a terminal: use -u USER --password-stdin")
        username = username or input("Username: ")
        password = getpass.getpass("Password: ")
    if not username or not password:
        raise UsageError("username and password are both required")
    creds = auth.Credentials(username, password)
    Registry(host, creds).ping()
    where = auth.store_credentials(host, creds)
    if not where.startswith("docker-credential-"):
        print(f"WARNING! Your password will be stored unencrypted in {where}.", file=sys.stderr)
    print("Login Succeeded")
    return 0


def cmd_logout(args) -> int:
    from builder.registry import auth
    from builder.registry.reference import registry_host

    host = registry_host(args.server or "docker.io")
    if auth.erase_credentials(host):
        print(f"Removing login credentials for {host}")
    else:
        print(f"Not logged in to {host}")
    return 0


def cmd_search(args) -> int:
    from builder.registry.client import Registry
    from builder.registry.reference import DEFAULT_DOMAIN

    if args.limit < 1 or args.limit > 100:
        raise UsageError(f"invalid --limit {args.limit}: between 1 and 100")
    host, sep, term = args.term.partition("/")
    if not sep or ("." not in host and ":" not in host and host != "localhost"):
        raise BuildError("search needs a registry in the term (HOST[:PORT]/TERM): Docker Hub's search API is "
                         f"not supported, and {DEFAULT_DOMAIN} has no catalog")
    registry = Registry(host)
    registry.want("catalog", "*", kind="registry")
    found: list[str] = []
    url = "/v2/_catalog?n=100"
    while url and len(found) < args.limit:
        r = registry.request("GET", url, what=f"catalog of {host}")
        try:
            repos = r.json().get("repositories") or []
        except (ValueError, AttributeError):
            raise BuildError(f"{host}: the catalog is not JSON") from None
        found += [name for name in repos if term in name]
        url = r.links.get("next", {}).get("url")
    rows = [["NAME", "DESCRIPTION", "STARS", "OFFICIAL", "AUTOMATED"]]
    rows += [[f"{host}/{name}", "", "0", "", ""] for name in found[:args.limit]]
    print_table(rows)
    return 0


def add_parsers(sub) -> None:
    p = sub.add_parser("pull", help="download an image from a registry")
    p.add_argument("-q", "--quiet", action="store_true", help="print only the image's full name")
    p.add_argument("--platform", help="os/arch[/variant] to pick from a multi-platform image")
    p.add_argument("-a", "--all-tags", action="store_true", help="pull every tag of the repository")
    p.add_argument("name", metavar="NAME[:TAG|@DIGEST]")
    p.set_defaults(func=cmd_pull)

    p = sub.add_parser("push", help="upload an image to a registry")
    p.add_argument("-q", "--quiet", action="store_true", help="print nothing but errors")
    p.add_argument("-a", "--all-tags", action="store_true", help="push every tag of the repository in the store")
    p.add_argument("name", metavar="NAME[:TAG]")
    p.set_defaults(func=cmd_push)

    p = sub.add_parser("login", help="check credentials for a registry and keep them")
    p.add_argument("-u", "--username")
    p.add_argument("-p", "--password", help=argparse.SUPPRESS)
    p.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    p.add_argument("server", metavar="REGISTRY", nargs="?")
    p.set_defaults(func=cmd_login)

    p = sub.add_parser("logout", help="forget the credentials of a registry")
    p.add_argument("server", metavar="REGISTRY", nargs="?")
    p.set_defaults(func=cmd_logout)

    p = sub.add_parser("search", help="search a registry's catalog: pydock search HOST[:PORT]/TERM")
    p.add_argument("--limit", type=int, default=25, help="at most this many results (default 25)")
    p.add_argument("term", metavar="TERM")
    p.set_defaults(func=cmd_search)
