"""A launcher for a real single-node Apache Kafka broker (KRaft), built from Maven Central jars.

Used by the tests and the local run; no Docker needed, only a JDK 17+ and Maven::

    info = localkafka.start(Path(".esep/kafka"), version=os.environ.get("ESEP_KAFKA_VERSION", localkafka.DEFAULT_VERSION))
    ...  # connect to info.bootstrap / info.url
    localkafka.stop(info.data_dir)
"""

from .broker import start, status, stop
from .errors import BrokerError
from .jars import ensure_jars
from .state import BrokerInfo
from .versions import DEFAULT_VERSION

__all__ = [
    "DEFAULT_VERSION",
    "BrokerError",
    "BrokerInfo",
    "ensure_jars",
    "start",
    "status",
    "stop",
]
