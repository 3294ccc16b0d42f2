"""Emulated HubSpot CRM v3 portal: contacts and companies, search, owners, properties."""
