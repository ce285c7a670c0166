"""cdc-bridge: DynamoDB Streams -> Kafka change-data-capture as Avro records."""

__version__ = "0.1.0"
