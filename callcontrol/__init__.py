"""SIP call control: the SIP core (`callcontrol.sip`) and the call flow built on it."""
