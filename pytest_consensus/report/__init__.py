"""From outcomes to a verdict a user can trust: what each test did (records), the rules and
their verdicts, figures measured from histories, evidence kept on disk, and the certificate
in JSON, Markdown and HTML. Imports the layers below it, never :mod:`pytest_consensus.plugin`."""
