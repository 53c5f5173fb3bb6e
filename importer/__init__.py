"""rd-importer: bulk import of lead spreadsheets into RD Station Marketing conversions."""

__version__ = "0.1.0"
