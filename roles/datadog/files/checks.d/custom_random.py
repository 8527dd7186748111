"""The lab's custom Agent check: a random gauge, my_metric, from 1 to 1000 (the seed's check, fixed)."""
import random

from datadog_checks.base import AgentCheck

__version__ = '1.0.0'


class RandomCheck(AgentCheck):
    def check(self, instance):
        self.gauge('my_metric', random.randint(1, 1000), tags=['type:custom'] + list(instance.get('tags', [])))
