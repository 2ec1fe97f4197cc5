"""The workbench application: CLI, config, data, Lightning training, experiments, reports."""
