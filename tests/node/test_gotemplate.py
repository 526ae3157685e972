"""`--format` templates as Docker users write them (Go's text/template), rendered without a daemon."""

from __future__ import annotations

from typing import Any

import pytest

from node.cli.gotemplate import render, render_table
from node.errors import InvalidArgument

CONTAINER: dict[str, Any] = {
    "Id": "0123456789abcdef", "Name": "/web", "RestartCount": 2,
    "State": {"Status": "running", "Running": True, "ExitCode": 0, "Health": None},
    "Config": {"Labels": {"tier": "front", "app": "shop"}, "Env": ["A=1", "B=2"], "Cmd": ["sleep", "100"]},
    "NetworkSettings": {"Networks": {"front": {"IPAddress": "10.0.0.5"}, "back": {"IPAddress": "10.1.0.5"}},
                        "Ports": {"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8080"}]}},
}
NETWORK: dict[str, Any] = {"Name": "front", "IPAM": {"Config": [{"Subnet": "10.0.0.0/24", "Gateway": "10.0.0.1"}]}}


@pytest.mark.parametrize(("template", "obj", "expected"), [
    ("{{.State.Status}}", CONTAINER, "running"),
    ("{{.RestartCount}}", CONTAINER, "2"),
    ("{{json .Config.Cmd}}", CONTAINER, '["sleep","100"]'),
    ("{{.Config.Cmd}}", CONTAINER, "[sleep 100]"),
    ("{{index .Config.Labels \"tier\"}}", CONTAINER, "front"),
    # the idioms of Docker's docs and of countless scripts
    ("{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}", CONTAINER, "10.1.0.5 10.0.0.5 "),  # keys sorted
    ("{{(index .IPAM.Config 0).Gateway}}", NETWORK, "10.0.0.1"),
    ("{{(index (index .NetworkSettings.Ports \"80/tcp\") 0).HostPort}}", CONTAINER, "8080"),
    ("{{range $k, $v := .Config.Labels}}{{$k}}={{$v}},{{end}}", CONTAINER, "app=shop,tier=front,"),
    ("{{range $i, $e := .Config.Env}}{{$i}}:{{$e}} {{end}}", CONTAINER, "0:A=1 1:B=2 "),
    ("{{if eq .State.Status \"running\"}}up{{else}}down{{end}}", CONTAINER, "up"),
    ("{{if ne .State.Status \"running\"}}down{{else if gt .RestartCount 1}}flapping{{end}}", CONTAINER, "flapping"),
    ("{{if and .State.Running (not .State.Health)}}no healthcheck{{end}}", CONTAINER, "no healthcheck"),
    ("{{.Name | upper}}", CONTAINER, "/WEB"),
    ("{{$name := .Name}}{{range .Config.Env}}{{$name}} {{.}};{{end}}", CONTAINER, "/web A=1;/web B=2;"),
    ("{{with .State}}{{.ExitCode}}{{end}}", CONTAINER, "0"),
    ("{{range .Nothing}}x{{else}}none{{end}}", CONTAINER, "none"),
    ("{{printf \"%-6s|%d\" .State.Status .RestartCount}}", CONTAINER, "running|2"),
    ("{{join (split \"a,b,c\" \",\") \"+\"}}", CONTAINER, "a+b+c"),
    ("{{len .Config.Env}} {{$.Name}}", CONTAINER, "2 /web"),
    ("a  {{- /* a comment */ -}}  b", CONTAINER, "ab"),
    ("{{.NoSuchField}}", CONTAINER, "<no value>"),
    ("{{eq .NoSuchField \"x\"}}", CONTAINER, "false"),
    ("{{.Name}}\\t{{.RestartCount}}", CONTAINER, "/web\t2"),
])
def test_templates_render_as_go_does(template: str, obj: dict[str, Any], expected: str) -> None:
    assert render(template, obj) == expected


@pytest.mark.parametrize(("template", "message"), [
    ("{{nosuch .Name}}", 'function "nosuch" not defined'),
    ("{{if .Name}}open", "missing {{end}} for if"),
    ("{{end}}", "unexpected {{end}}"),
    ("{{(index .Name}}", "unclosed left paren"),
    ("{{.Name .Id}}", "can't give argument to non-function"),
    ("{{$nope}}", "undefined variable"),
    ("{{lt .Name 3}}", "incompatible types"),
])
def test_bad_templates_are_one_clear_error(template: str, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message.replace("(", r"\(").replace("{", r"\{").replace("}", r"\}")):
        render(template, CONTAINER)


def test_table_templates_have_docker_headers() -> None:
    rows = [{"ID": "abc", "Names": "web"}, {"ID": "defghi", "Names": "db"}]
    out = render_table("table {{.ID}}\\t{{.Names}}", rows, headers={"ID": "CONTAINER ID", "Names": "NAMES"})
    assert out.splitlines() == ["CONTAINER ID   NAMES", "abc            web", "defghi         db"]
