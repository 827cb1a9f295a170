"""SIP call control: the SIP core (`callcontrol.sip`) and the inmate call flow built on it.

* `callcontrol.admission.Admission` judges a new facility INVITE (draining,
  trunk, loop, Contact, request URI, SDP offer) and returns the facts of the
  admitted call or the exact answer to send, with no I/O.
* `callcontrol.flow.CallFlow` is one call as a sans-IO state machine (the
  transition table is `callcontrol.flow.TRANSITIONS`) and holds the call's
  state: feed it ``call_requested`` (the PIN and number: from the INVITE, or
  later from a menu), ``authorized``, ``refused``, ``carrier_progress``,
  ``carrier_answered``, ``carrier_answer_unusable``, ``carrier_unreachable``,
  ``carrier_failed``, ``caller_cancelled``, ``caller_hung_up``,
  ``called_hung_up``, ``digit``, ``prompt_finished``, ``media_lost``,
  ``caller_lost``, ``hang_up`` and ``handle_timer`` at ``get_timer()``, each
  with ``now`` (and ``funds_held`` when the payer's funds are held); carry
  out the actions it returns (`callcontrol.actions`) and record its facts
  (`callcontrol.events`, ending with one ``CallEnded``). A call on a menu
  trunk is built with its ``caller_menu`` (`ivr.CallerMenu`), starts with
  ``start_menu`` and takes ``caller_digit``, ``pin_checked`` and
  ``caller_prompt_finished`` as well; its table is ``MENU_CALL_TRANSITIONS``.
* `callcontrol.outcomes` is the facility-side outcome table (status, Q.850
  cause, CDR outcome) and the dialled-number pre-check.
* `callcontrol.app.CallController` is the asyncio adapter, I/O only: SIP
  transports, media legs, timers, tasks, the account store; it implements the
  HTTP service's ``LiveCalls`` (``list_calls()``, ``await hang_up(call_id, reason)``).
* ``ics serve`` itself (store, controller and HTTP wired together) is `ics.service`.
"""
