"""Segment's Dotdigital (Actions) destination ("Marketing"): contacts, lists, programs, campaigns,
transactional email and SMS, as Segment's code does them."""
