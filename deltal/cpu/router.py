"""The CPU backend's rollout request router: verl's routing rule in a module that imports nothing from verl.

verl runs one request-router actor per training run (``GlobalRequestLoadBalancer``, in
``verl/workers/rollout/router.py``). Its class lives in a verl module, so that actor's process imports verl, about
4 CPU seconds, at every launch while the rollout servers and agent-loop workers start beside it
(docs/cpu-step-profile.md). verl builds a router named in a YAML file instead when
``actor_rollout_ref.rollout.router_config_path`` is set: the file's ``router_class`` becomes a Ray actor, built with
``(servers, yaml_config)``. ``deltal/config/backend/cpu.yaml`` points it at ``deltal/cpu/router.yaml``, which names
the class here. Its actor imports this module and the standard library only.

The rule is verl's sticky least-in-flight one. A request id that was routed before goes back to its server while
that server is in the pool, so the turns of one conversation meet the same server. A new id goes to the server with
the fewest requests in flight; ties go to the first registered server, where verl draws among them at random. verl
hands its ``rollout.full_determinism`` hash routing to its built-in router only. The CPU backend runs one server per
fake GPU, one by default, and then every rule routes alike.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

# Request ids remembered for sticky routing, as many as verl's router keeps; the least recently used go first.
STICKY_CACHE_SIZE = 10_000


class CPURequestRouter:
    """Sticky least-in-flight routing over rollout servers ``{server_id: actor_handle}`` (verl's router protocol)."""

    def __init__(self, servers: dict[str, Any], yaml_config: dict | None = None) -> None:
        # yaml_config: the router file's contents, which verl hands every plugin router; this one has no settings.
        self._handles: dict[str, Any] = {}
        self._in_flight: dict[str, int] = {}
        self._server_of_request: OrderedDict[str, str] = OrderedDict()
        self.add_servers(servers)

    def acquire_server(self, request_id: str, **extra: Any) -> tuple[str, Any]:
        """``(server_id, handle)`` for ``request_id``, counted in flight until ``release_server``."""
        server_id = self._server_of_request.get(request_id)
        if server_id not in self._in_flight:
            if not self._in_flight:
                raise RuntimeError("the rollout router has no servers: none was registered, or all were removed")
            server_id = min(self._in_flight, key=self._in_flight.__getitem__)
        self._server_of_request[request_id] = server_id
        self._server_of_request.move_to_end(request_id)
        if len(self._server_of_request) > STICKY_CACHE_SIZE:
            self._server_of_request.popitem(last=False)
        self._in_flight[server_id] += 1
        return server_id, self._handles[server_id]

    def release_server(self, server_id: str, request_id: str | None = None) -> None:
        """One request on ``server_id`` finished (a removed server is ignored)."""
        if self._in_flight.get(server_id, 0) > 0:
            self._in_flight[server_id] -= 1

    def require_acquire_fields(self) -> list[str]:
        """Routing needs the request id only: no other ``generate`` argument travels to this actor."""
        return []

    def require_release_fields(self) -> list[str]:
        """Releases are counted per server: the request id does not travel either."""
        return []

    def add_servers(self, servers: dict[str, Any]) -> None:
        for server_id, handle in servers.items():
            self._handles[server_id] = handle
            self._in_flight.setdefault(server_id, 0)

    def remove_servers(self, server_ids: list[str]) -> None:
        """Requests sticky to a removed server are routed anew on their next turn."""
        for server_id in server_ids:
            self._handles.pop(server_id, None)
            self._in_flight.pop(server_id, None)

    def get_all_servers(self) -> list[str]:
        return list(self._in_flight)

    def get_total_inflight(self) -> int:
        return sum(self._in_flight.values())

    def clear_sticky_cache(self) -> dict:
        """Forget every request's server, so that the next turns spread by load alone."""
        cleared = len(self._server_of_request)
        self._server_of_request.clear()
        return {"cleared_entries": cleared, "server_loads": dict(self._in_flight)}

    def get_status(self) -> dict:
        return {
            "servers": dict(self._in_flight),
            "total_inflight": self.get_total_inflight(),
            "active_servers": len(self._in_flight),
            "registered_handles": list(self._handles),
        }
