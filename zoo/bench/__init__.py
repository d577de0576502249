"""``zoo bench``: the head-to-head benchmark of alignment algorithms on one task."""
from zoo.bench.task import Task, TaskArgs, TaskData

__all__ = ["Task", "TaskArgs", "TaskData"]
