"""④ Delivery: claim a window of the log → send → classify → settle."""
