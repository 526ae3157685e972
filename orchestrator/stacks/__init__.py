"""Stacks: a compose file deployed to the cluster.

The CLI loads the file with compose's loader (interpolation, .env, profiles, extends, include), builds
what has `build:` on the manager's engine, and maps the project to a `StackDeployment` (mapping.py, pure);
the manager applies it in one store transaction (deploy.py): services, overlay networks, secrets and
configs of the stack are created, changed or removed so that the store holds exactly what the file says.
"""
