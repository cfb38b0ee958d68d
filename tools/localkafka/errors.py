"""The one exception the launcher raises."""


class BrokerError(Exception):
    """The local Kafka broker could not be provided; the message says what to do next."""
