"""The agent on every node: a session with a manager (failing over to another), running the tasks
it is assigned through the local engine's API and reporting their status."""

from orchestrator.agent.agent import Agent
from orchestrator.agent.executor import Assignment, Executor, plan_task

__all__ = ["Agent", "Assignment", "Executor", "plan_task"]
