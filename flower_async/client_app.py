"""The ClientApp: one local work on the node's partition, from the weights it was sent.

Each message starts a fresh ``flwr-clientapp`` process on the SuperNode, so the node's data
and model are built per message (the partition is cheap to recompute). The reply holds the
update (local weights minus the weights received) and the node's metrics: ``num-examples``
(its training examples), ``train-loss``, ``partition-id``, ``work-seconds``.
"""
import time

from flwr.app import ArrayRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

from flower_async import tasks
from flower_async.settings import Settings

app = ClientApp()
"""The ClientApp component (``flower_async.client_app:app`` in ``app/pyproject.toml``)."""


@app.train()
def train(msg: Message, context: Context) -> Message:
    """Trains from the received weights and replies with the update.

    Args:
      msg: the server's message: ``arrays`` (the weights) and ``config`` (``version``,
        ``work``: the node's local-work counter, which seeds its batches).
      context: the node's context: ``node_config`` has ``partition-id``, ``num-partitions``
        and optionally ``sleep`` (seconds to wait after the work).
    """
    started = time.monotonic()
    settings = Settings.from_run_config(context.run_config)
    partition_id = int(context.node_config["partition-id"])
    num_partitions = int(context.node_config["num-partitions"])
    weights = msg.content["arrays"].to_numpy_ndarrays()
    work = int(msg.content["config"]["work"])
    x, y = tasks.partition(settings, partition_id, num_partitions)
    batch_x, batch_y = tasks.local_batches(x, y, settings, [partition_id, work])
    local, loss = tasks.build_task(settings).train(weights, batch_x, batch_y)
    time.sleep(float(context.node_config.get("sleep", 0.0)))
    update = [new - old for new, old in zip(local, weights)]
    metrics = MetricRecord({"num-examples": len(x), "train-loss": loss, "partition-id": partition_id,
                            "work-seconds": time.monotonic() - started})
    return Message(RecordDict({"arrays": ArrayRecord(update), "metrics": metrics}), reply_to=msg)
