"""sgbridge's Twilio SMS destination: ``twilio.sendSms`` through Twilio's Messages API."""
