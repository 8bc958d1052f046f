"""Kafka client settings from the environment: the properties file, the
KAFKA_PROPERTY_ variables, their precedence, the one message-size setting,
secrets kept out of everything shown, and which outputs go to Kafka at all."""

from __future__ import annotations

from pathlib import Path

import pytest
from bytewax.visualize import to_json
from confluent_kafka import Producer

from eventio.config import IOConfig
from eventio.kafka_config import KafkaConfigError, KafkaSettings, env_properties, parse_properties

SECRET = "s3cr3t-Pa55word!"


def test_java_properties_syntax() -> None:
    text = "\n".join([
        "# a comment", "! another", "",
        "bootstrap.servers = b1:9092,b2:9092",
        "security.protocol:SASL_SSL",
        "sasl.mechanism SCRAM-SHA-512",
        "ssl.ca.location=/etc/ca\\",
        "    .pem",
        "client.id=caf\\u00e9\\tx",
        "odd\\=key=value with = sign",
        "empty=",
    ])
    assert parse_properties(text, "f") == {
        "bootstrap.servers": "b1:9092,b2:9092",
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-512",
        "ssl.ca.location": "/etc/ca.pem",
        "client.id": "café\tx",
        "odd=key": "value with = sign",
        "empty": "",
    }
    with pytest.raises(KafkaConfigError, match="f line 1"):
        parse_properties("=value", "f")


def test_variables_map_to_librdkafka_names() -> None:
    env = {"KAFKA_PROPERTY_SASL_MECHANISM": "PLAIN", "KAFKA_PROPERTY_SSL_CA_LOCATION": "/ca.pem",
           "KAFKA_BOOTSTRAP_SERVERS": "x:1", "KAFKA_BATCH_SIZE": "5", "KAFKA_PORT": "tcp://10.0.0.1:9092"}
    assert env_properties(env) == {"sasl.mechanism": "PLAIN", "ssl.ca.location": "/ca.pem"}


def test_precedence_tuned_then_file_then_variables_then_what_the_flow_owns(tmp_path: Path) -> None:
    props = tmp_path / "client.properties"
    props.write_text("linger.ms=50\ncompression.type=zstd\nacks=1\nbootstrap.servers=file:9092\n"
                     "transactional.id=not-mine\n")
    env = {"KAFKA_PROPERTIES_FILE": str(props), "KAFKA_PROPERTY_COMPRESSION_TYPE": "gzip"}
    cfg = IOConfig.from_env(env=env)
    config = cfg.kafka.producer({"linger.ms": 5, "compression.type": "lz4", "batch.num.messages": 7},
                                {"transactional.id": "mine"})
    assert config["batch.num.messages"] == 7          # tuned default, nothing overrides it
    assert config["linger.ms"] == "50"                # the file beats the tuned default
    assert config["compression.type"] == "gzip"       # a variable beats the file
    assert config["transactional.id"] == "mine"       # the flow owns it
    assert config["bootstrap.servers"] == "file:9092"  # no KAFKA_BOOTSTRAP_SERVERS: the file's
    assert cfg.kafka.describe_brokers() == f"file:9092 (bootstrap.servers in KAFKA_PROPERTIES_FILE ({props}))"
    pinned = IOConfig.from_env(env={**env, "KAFKA_BOOTSTRAP_SERVERS": "env:9092"})
    assert pinned.kafka.consumer()["bootstrap.servers"] == "env:9092"
    assert IOConfig().kafka.describe_brokers() == "localhost:9092 (default; set KAFKA_BOOTSTRAP_SERVERS)"


def test_max_message_bytes_and_message_max_bytes_are_one_setting() -> None:
    assert IOConfig.from_env(env={}).kafka.max_message_bytes == 1_000_000
    from_property = IOConfig.from_env(env={"KAFKA_PROPERTY_MESSAGE_MAX_BYTES": "2000000"}).kafka
    assert from_property.max_message_bytes == 2_000_000
    assert from_property.producer()["message.max.bytes"] == 2_000_000
    assert "message.max.bytes" not in from_property.consumer()  # a request limit for consumers
    both = {"KAFKA_PROPERTY_MESSAGE_MAX_BYTES": "2000000", "MAX_MESSAGE_BYTES": "2000000"}
    assert IOConfig.from_env(env=both).kafka.producer()["message.max.bytes"] == 2_000_000
    with pytest.raises(KafkaConfigError, match=r"MAX_MESSAGE_BYTES \(3000000\) and message.max.bytes in "
                                               r"KAFKA_PROPERTY_MESSAGE_MAX_BYTES \(2000000\) differ"):
        IOConfig.from_env(env={**both, "MAX_MESSAGE_BYTES": "3000000"})
    assert IOConfig.from_env(env={"MAX_MESSAGE_BYTES": "5000"}).kafka.producer()["message.max.bytes"] == 5000


def test_a_java_jaas_config_becomes_librdkafka_username_and_password(tmp_path: Path) -> None:
    props = tmp_path / "flink.properties"
    props.write_text("security.protocol=SASL_SSL\nsasl.mechanism=SCRAM-SHA-256\n"
                     'sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required '
                     f'username="flink" password="{SECRET}";\n')
    kafka = KafkaSettings.resolve(properties_file=str(props))
    assert (kafka.properties["sasl.username"], kafka.properties["sasl.password"]) == ("flink", SECRET)
    assert "sasl.jaas.config" not in kafka.properties
    props.write_text("sasl.jaas.config=com.sun.security.auth.module.Krb5LoginModule required;\n")
    with pytest.raises(KafkaConfigError, match="no counterpart"):
        KafkaSettings.resolve(properties_file=str(props))


def test_a_missing_file_or_a_bad_property_is_named_without_its_value(tmp_path: Path) -> None:
    with pytest.raises(KafkaConfigError, match="cannot read KAFKA_PROPERTIES_FILE"):
        IOConfig.from_env(env={"KAFKA_PROPERTIES_FILE": str(tmp_path / "nope")})
    kafka = IOConfig.from_env(env={"KAFKA_PROPERTY_SASL_PASWORD": SECRET}).kafka
    with pytest.raises(KafkaConfigError) as raised:
        kafka.make(Producer, kafka.producer())
    assert "sasl.pasword" in str(raised.value) and "KAFKA_PROPERTY_SASL_PASWORD" in str(raised.value)
    assert SECRET not in str(raised.value)
    kafka = IOConfig.from_env(env={"KAFKA_PROPERTY_SECURITY_PROTOCOL": SECRET, "KAFKA_PROPERTY_SASL_PASSWORD": SECRET}).kafka
    with pytest.raises(KafkaConfigError) as raised:  # librdkafka quotes a bad value; a secret is blanked out
        kafka.make(Producer, kafka.producer())
    assert SECRET not in str(raised.value) and "***" in str(raised.value)


def test_secrets_stay_out_of_reprs_and_the_dataflow_api(tmp_path: Path) -> None:
    from flows.session_analytics import build

    cfg = IOConfig.from_env(env={"KAFKA_PROPERTY_SASL_PASSWORD": SECRET})
    assert cfg.kafka.properties["sasl.password"] == SECRET
    assert SECRET not in repr(cfg) and SECRET not in repr(cfg.kafka)
    assert cfg.kafka.redact(f"password {SECRET} here") == "password *** here"
    flow = build(kafka_properties={"sasl.password": SECRET})
    assert SECRET not in to_json(flow)  # what BYTEWAX_DATAFLOW_API_ENABLED serves


def test_outputs_follow_the_medium_of_the_results(tmp_path: Path) -> None:
    out = str(tmp_path / "out.jsonl")
    files = IOConfig(input_path="in.jsonl", output_path=out)
    assert files.late_output.path == str(tmp_path / "out.late.jsonl")
    assert files.dead_letter_output.path == str(tmp_path / "out.dlq.jsonl")
    assert files.side_output("audit", {}, "audit").path == str(tmp_path / "out.audit.jsonl")
    assert files.side_output("metrics", {"metrics_output_path": "m.jsonl"}, "metrics",
                             path_var="METRICS_OUTPUT_PATH").path == "m.jsonl"
    # Configured for Kafka: Kafka, results in a file or not.
    mixed = IOConfig(output_path=out, late_topic="late", dlq_topic="bad")
    assert (mixed.late_output.path, mixed.late_output.topic) == (None, "late")
    assert mixed.dead_letter_output.topic == "bad"
    assert mixed.side_output("audit", {"audit_topic": "aud"}, "audit").topic == "aud"
    # No path anywhere: every output on its topic.
    kafka = IOConfig()
    assert (kafka.results.topic, kafka.late_output.topic, kafka.dead_letter_output.topic) == (
        "results", "late-events", "dlq")
    assert kafka.results.describe == "output topic 'results' (OUTPUT_TOPIC)"
    explicit = IOConfig(output_path=out, late_output_path="late.jsonl", error_output_path="err.jsonl")
    assert (explicit.late_output.path, explicit.dead_letter_output.path) == ("late.jsonl", "err.jsonl")
