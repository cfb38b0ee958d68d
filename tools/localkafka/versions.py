"""What differs between Kafka release lines, in one place."""

DEFAULT_VERSION = "3.9.1"


def major(version: str) -> int:
    """Major number of a Kafka version string such as "3.9.1" or "4.1.1"."""
    try:
        return int(version.split(".", 1)[0])
    except ValueError:
        raise ValueError(f"not a Kafka version: {version!r} (expected e.g. 3.9.1)") from None


def uses_log4j2(version: str) -> bool:
    # Kafka 4.0 moved the broker from log4j 1 (reload4j) to log4j2 (KIP-653).
    return major(version) >= 4
