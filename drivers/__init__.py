"""Low-level drivers and wire protocols (MQTT, serial ID-card readers, PC/SC) that devices use."""
