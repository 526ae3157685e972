"""HTTPS clients to managers: mutual TLS with this node's certificate; a manager must prove it is one.

Every request names `swarm-manager` as the TLS server name, which only manager certificates carry.
"""

from __future__ import annotations

import ssl
from typing import Any

import httpx

from orchestrator.daemon.localstate import SwarmPaths
from orchestrator.security import MANAGER_SERVER_NAME, client_context

SNI = {"sni_hostname": MANAGER_SERVER_NAME}


def node_context(paths: SwarmPaths) -> ssl.SSLContext:
    return client_context(ca_pem=paths.ca_cert.read_bytes(), cert_pem=paths.node_cert.read_bytes(),
                          key_pem=paths.node_key.read_bytes())


def url(addr: str, path: str) -> str:
    return f"https://{addr}{path}"


def async_client(paths: SwarmPaths, *, timeout: float = 30.0) -> httpx.AsyncClient:
    return httpx.AsyncClient(verify=node_context(paths), timeout=timeout)


def message_of(response: httpx.Response) -> str:
    try:
        body: Any = response.json()
        return str(body.get("message") or body)
    except ValueError:
        return response.text or response.reason_phrase
