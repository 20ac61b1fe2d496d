"""The nodes' failures as the server counts them.

A node's work fails when its reply carries an error (its ClientApp raised, or the SuperLink
reports the node unavailable) or when no reply comes within ``reply-timeout``. Nothing of a
failed work is aggregated and the node is sent the current model again: a failure may be
transient. A node whose works fail ``max-consecutive-failures`` times in a row is dropped from
the run; a reply that comes back ends a node's run of failures. The counts are part of the
server's checkpoint, so a resumed run keeps them (and keeps the dropped nodes out).
"""
import collections


class NodeFailures:
    """Each node's failures: in all, in a row, and whether it was dropped.

    Args:
      max_consecutive: the failures in a row after which a node is dropped.
    """

    def __init__(self, max_consecutive):
        self.max_consecutive = max_consecutive
        self.total = collections.Counter()
        self.in_a_row = collections.Counter()
        self.dropped = set()

    def failed(self, node):
        """Counts a failure of ``node``; returns whether the node is dropped by it.

        Args:
          node: the node's id.
        """
        self.total[node] += 1
        self.in_a_row[node] += 1
        if self.in_a_row[node] >= self.max_consecutive and node not in self.dropped:
            self.dropped.add(node)
            return True
        return False

    def replied(self, node):
        """``node``'s work came back: its run of failures ends.

        Args:
          node: the node's id.
        """
        self.in_a_row[node] = 0

    def live(self, nodes):
        """The nodes of ``nodes`` not dropped, in order.

        Args:
          nodes: node ids.
        """
        return [n for n in nodes if n not in self.dropped]

    def state(self):
        """The counts as JSON (node ids as strings)."""
        return {"total": {str(n): k for n, k in sorted(self.total.items())},
                "in_a_row": {str(n): k for n, k in sorted(self.in_a_row.items()) if k},
                "dropped": sorted(self.dropped)}

    def load(self, state):
        """Restores ``state()``'s counts.

        Args:
          state: what ``state()`` returned.
        """
        self.total = collections.Counter({int(n): k for n, k in state["total"].items()})
        self.in_a_row = collections.Counter({int(n): k for n, k in state["in_a_row"].items()})
        self.dropped = {int(n) for n in state["dropped"]}
