"""-p/--expose parsing into docker's record shapes, and docker's `port` lines and ps PORTS column."""

import pytest

from builder.network.portspec import (PortSpecError, exposed_ports, parse_expose, parse_publish, port_bindings,
                                      port_lines, ps_ports, wanted_bindings)


@pytest.mark.parametrize("spec, expected", [
    ("3000:5000", {"5000/tcp": [{"HostIp": "", "HostPort": "3000"}]}),
    ("5000", {"5000/tcp": [{"HostIp": "", "HostPort": ""}]}),
    ("127.0.0.1:8080:80", {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8080"}]}),
    ("127.0.0.1::80", {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": ""}]}),
    ("53:53/udp", {"53/udp": [{"HostIp": "", "HostPort": "53"}]}),
    ("53/UDP", {"53/udp": [{"HostIp": "", "HostPort": ""}]}),
    ("8000-8001:80-81", {"80/tcp": [{"HostIp": "", "HostPort": "8000"}],
                         "81/tcp": [{"HostIp": "", "HostPort": "8001"}]}),
    ("80-81", {"80/tcp": [{"HostIp": "", "HostPort": ""}], "81/tcp": [{"HostIp": "", "HostPort": ""}]}),
    ("8000-8010:80", {"80/tcp": [{"HostIp": "", "HostPort": "8000-8010"}]}),
    ("[::1]:8080:80", {"80/tcp": [{"HostIp": "::1", "HostPort": "8080"}]}),
])
def test_publish_grammar(spec, expected):
    assert parse_publish(spec) == expected


@pytest.mark.parametrize("spec, message", [
    ("abc", "invalid containerPort: abc"),
    ("0", "invalid containerPort: 0"),
    ("70000", "invalid containerPort: 70000"),
    ("x:80", "invalid hostPort: x"),
    ("300.1.1.1:80:80", "invalid ip address: 300.1.1.1"),
    ("80/icmp", "invalid proto: icmp"),
    ("8000-8002:80-81", "invalid ranges specified for container and host Ports: 80-81 and 8000-8002"),
    ("81-80", "invalid range specified for containerPort: 81-80"),
    ("1:2:3:4", "invalid port format: 1:2:3:4"),
    ("8080:", "no port specified: 8080:<empty>"),
])
def test_publish_refused(spec, message):
    with pytest.raises(PortSpecError, match=f"^{message}$"):
        parse_publish(spec)


def test_expose_and_merge():
    assert parse_expose("7000-7001/udp") == ["7000/udp", "7001/udp"]
    with pytest.raises(PortSpecError):
        parse_expose("80:80")
    bindings = port_bindings(["8080:80", "127.0.0.1:9090:80"])
    assert bindings == {"80/tcp": [{"HostIp": "", "HostPort": "8080"}, {"HostIp": "127.0.0.1", "HostPort": "9090"}]}
    assert exposed_ports({"443/tcp": {}}, ["53/udp"], bindings) == {"443/tcp": {}, "53/udp": {}, "80/tcp": {}}


def test_publish_all_adds_random_bindings_for_exposed_ports():
    doc = {"Config": {"ExposedPorts": {"80/tcp": {}, "443/tcp": {}}},
           "HostConfig": {"NetworkMode": "bridge", "PublishAllPorts": True,
                          "PortBindings": {"80/tcp": [{"HostIp": "", "HostPort": "8080"}]}}}
    assert wanted_bindings(doc) == {"80/tcp": [{"HostIp": "", "HostPort": "8080"}],
                                    "443/tcp": [{"HostIp": "", "HostPort": ""}]}
    doc["HostConfig"]["NetworkMode"] = "host"
    assert wanted_bindings(doc) == {}


PORTS = {"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "32768"}],
         "53/udp": [{"HostIp": "127.0.0.1", "HostPort": "5353"}],
         "443/tcp": None}


def test_port_lines_as_docker_prints_them():
    assert port_lines(PORTS) == ["53/udp -> 127.0.0.1:5353", "80/tcp -> 0.0.0.0:32768"]
    assert port_lines(PORTS, "80") == ["0.0.0.0:32768"]
    assert port_lines(PORTS, "53/udp") == ["127.0.0.1:5353"]
    assert port_lines(PORTS, "53") == []


def test_ps_column_as_docker_prints_it():
    assert ps_ports({"5000/tcp": [{"HostIp": "0.0.0.0", "HostPort": "3000"}]}) == "0.0.0.0:3000->5000/tcp"
    assert ps_ports({"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "80"}],
                     "81/tcp": [{"HostIp": "0.0.0.0", "HostPort": "81"}]}) == "0.0.0.0:80-81->80-81/tcp"
    assert ps_ports(PORTS) == "443/tcp, 127.0.0.1:5353->53/udp, 0.0.0.0:32768->80/tcp"
