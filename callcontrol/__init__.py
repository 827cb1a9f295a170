"""SIP call control: the SIP core (`callcontrol.sip`) and the inmate call flow built on it.

* `callcontrol.flow.CallFlow` is one call as a sans-IO state machine (the
  transition table is `callcontrol.flow.TRANSITIONS`): feed it ``authorized``,
  ``refused``, ``carrier_progress``, ``carrier_answered``, ``carrier_failed``,
  ``caller_cancelled``, ``caller_hung_up``, ``called_hung_up``, ``digit``,
  ``prompt_finished``, ``media_lost``, ``caller_lost``, ``hang_up`` and
  ``handle_timer`` at ``get_timer()``, each with ``now``; carry out the
  actions it returns (`callcontrol.actions`) and record its facts
  (`callcontrol.events`, ending with one ``CallEnded``).
* `callcontrol.outcomes` is the facility-side outcome table (status, Q.850
  cause, CDR outcome) and the dialled-number pre-check.
* `callcontrol.app.CallController` is the asyncio adapter: SIP transports,
  media legs, the account store; it implements the HTTP service's
  ``LiveCalls`` (``list_calls()``, ``await hang_up(call_id, reason)``).
* ``ics serve`` itself (store, controller and HTTP wired together) is `ics.service`.
"""
