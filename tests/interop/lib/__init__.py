"""The interop test library: hosts and namespaces, strongSwan as the peer, the project's processes, traffic,
the standard daemon lab, and one report format. Scenario scripts in tests/interop import from here."""
