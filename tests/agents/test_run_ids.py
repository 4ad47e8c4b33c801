from signalvault.agents.run_ids import run_id_of


def test_a_session_names_the_run_within_its_project():
    first = run_id_of("shop", "chat-42", "0af7651916cd43dd8448eb211c80319c")
    assert first == run_id_of("shop", "chat-42", None)  # the session wins over the trace
    assert first != run_id_of("billing", "chat-42", None)
    assert first is not None and len(first) <= 64


def test_without_a_session_the_trace_is_the_run():
    trace = "0af7651916cd43dd8448eb211c80319c"
    assert run_id_of("shop", None, trace) == "t-" + trace
    assert run_id_of("shop", None, None) is None
