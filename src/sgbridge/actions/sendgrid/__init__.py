"""SendGrid actions: planning contact, list, suppression and mail operations, and running them."""
