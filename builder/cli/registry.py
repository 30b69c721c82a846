"""pydock pull, push, login, logout and search: the verbs that talk to a registry."""

from __future__ import annotations

import argparse
import getpass
import sys

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


SEARCH_FILTERS = ("stars", "is-official", "is-automated")
SEARCH_COLUMNS = {"Name": "NAME", "Description": "DESCRIPTION", "StarCount": "STARS", "IsOfficial": "OFFICIAL",
                  "IsAutomated": "AUTOMATED"}


def _search_filters(given: list[str]) -> dict:
    """--filter stars=N | is-official=BOOL | is-automated=BOOL, checked as docker checks them."""
    wanted: dict = {}
    for text in given:
        key, sep, value = text.partition("=")
        if not sep or key not in SEARCH_FILTERS:
            raise UsageError(f"invalid filter '{key if sep else text}'")
        if key == "stars":
            if not value.lstrip("-").isdigit():
                raise UsageError(f"invalid filter 'stars={value}'")
            wanted["stars"] = max(wanted.get("stars", 0), int(value))
        else:
            flag = {"true": True, "1": True, "false": False, "0": False}.get(value.lower())
            if flag is None:
                raise UsageError(f"invalid filter '{key}={value}'")
            wanted[key] = flag
    return wanted


def cmd_search(args) -> int:
    from builder.cli.formatting import ellipsis, print_formatted
    from builder.registry.search import search

    if args.limit < 1 or args.limit > 100:
        raise UsageError(f"limit {args.limit} is outside the range of [1, 100]")
    wanted = _search_filters(args.filter or [])
    results = [r for r in search(args.term, args.limit)
               if r.star_count >= wanted.get("stars", 0)
               and wanted.get("is-official", r.is_official) == r.is_official
               and wanted.get("is-automated", r.is_automated) == r.is_automated]
    rows = []
    for r in results:
        description = r.description.replace("\n", " ").replace("\r", " ")
        rows.append({"Name": r.name, "Description": description if args.no_trunc else ellipsis(description, 45),
                     "StarCount": str(r.star_count), "IsOfficial": "[OK]" if r.is_official else "",
                     "IsAutomated": "[OK]" if r.is_automated else ""})
    default_table = "\t".join(f"{{{{.{key}}}}}" for key in SEARCH_COLUMNS)
    print_formatted(args.format or "table", rows, SEARCH_COLUMNS, default_table)
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

    p = sub.add_parser("search", help="search Docker Hub, or a registry: HOST[:PORT]/TERM (its /v1/search, "
                                      "else its catalog)")
    p.add_argument("--limit", type=int, default=25, help="at most this many results (default 25)")
    p.add_argument("-f", "--filter", action="append", metavar="FILTER",
                   help="stars=N, is-official=true|false, is-automated=true|false")
    p.add_argument("--no-trunc", action="store_true", help="do not truncate descriptions")
    p.add_argument("--format", help="a Go template per result ({{.Name}} {{.Description}} {{.StarCount}} "
                                    "{{.IsOfficial}} {{.IsAutomated}}), 'table TEMPLATE' or 'json'")
    p.add_argument("term", metavar="TERM")
    p.set_defaults(func=cmd_search)
