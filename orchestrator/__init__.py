"""The cluster: Swarm mode for pynode engines.

How a node takes part (the engine knows nothing of any of this; `node` never imports us):

* `pyswarm init|join` ask the node's engine (`-H` / PYNODE_HOST) for its data root, then start the
  node's **swarm daemon** (`pyswarm daemon`, `orchestrator.daemon`) beside it: in the network and UTS
  namespaces of the process serving the engine socket (found with SO_PEERCRED), with its state under
  `<data-root>/swarm/` (state.json, certificates/, raft/, control.sock, daemon.pid, daemon.log). The
  command then sends `/swarm/init` or `/swarm/join` to the daemon's local socket, as Docker's CLI
  sends them to dockerd. Every later `pyswarm` command talks to that socket too, and restarts the
  daemon first when the node is in a swarm but its daemon is gone. The daemon exits when its engine
  stops answering (they share a fate, as dockerd and its swarm component do); `pyswarm lab kill`
  kills both and `pyswarm lab start` starts both.
* The daemon writes `<data-root>/swarm/info.json`, which the engine shows as `Swarm` in `/info`
  (`pynode info`): the engine's only hook for the cluster, and a generic one.
* A **manager** (`orchestrator.manager`) runs a Raft member (`orchestrator.store`, pysyncobj on port
  2378, traffic encrypted with a secret handed to managers over mutual TLS), the control API over
  mutual TLS on port 2377 (FastAPI + uvicorn; peers' roles come from their certificates,
  `orchestrator.security`), and while leading the leader loops: dispatcher heartbeats, the
  reconciler (`orchestrator.reconcile`, pure) and the scheduler (`orchestrator.scheduler`, pure).
* Every node runs the **agent** (`orchestrator.agent`): a long-polling session with the leader's
  dispatcher (each call is a heartbeat; a follower names the leader, a dead manager makes it try
  another), running its assigned tasks as containers through the local engine's API (labelled
  `com.docker.swarm.service.name`, `.task.id`, ...), and reporting their status.
* `orchestrator.commands` are the `pyswarm` subcommands; `orchestrator.client` finds the daemon.
"""
