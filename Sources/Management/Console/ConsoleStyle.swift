/// The console's style sheet: tables that scroll sideways on a phone, forms that stack.
enum ConsoleStyle {
    static let css = #"""
        :root { --fg: #1d2630; --muted: #5b6875; --line: #d5dbe1; --bg: #f6f8fa; --accent: #0b5cad; --bad: #b3261e; --good: #1b7f3b; }
        * { box-sizing: border-box; }
        body { margin: 0; font: 15px/1.4 system-ui, sans-serif; color: var(--fg); background: var(--bg); }
        header { background: #14202c; color: #fff; padding: 0.5rem 1rem; display: flex; flex-wrap: wrap; align-items: center; gap: 0.5rem 1.5rem; }
        header h1 { font-size: 1.1rem; margin: 0; }
        nav { display: flex; flex-wrap: wrap; gap: 0.25rem 1rem; align-items: center; }
        nav a { color: #cfe3f7; text-decoration: none; padding: 0.2rem 0; }
        nav a.current { color: #fff; border-bottom: 2px solid #fff; }
        nav button { margin-left: auto; }
        main { padding: 1rem; max-width: 1200px; }
        h2 { font-size: 1.05rem; margin: 1rem 0 0.5rem; }
        .cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(150px, 1fr)); gap: 0.75rem; }
        .card { background: #fff; border: 1px solid var(--line); border-radius: 6px; padding: 0.6rem 0.8rem; }
        .card .label { color: var(--muted); font-size: 0.8rem; }
        .card .value { font-size: 1.4rem; font-weight: 600; }
        .scroll { overflow-x: auto; background: #fff; border: 1px solid var(--line); border-radius: 6px; }
        table { border-collapse: collapse; width: 100%; font-size: 0.9rem; }
        th, td { text-align: left; padding: 0.35rem 0.6rem; border-bottom: 1px solid var(--line); white-space: nowrap; vertical-align: top; }
        th { background: #eef2f6; font-weight: 600; }
        td.wrap { white-space: normal; }
        button { font: inherit; padding: 0.25rem 0.7rem; border: 1px solid var(--accent); background: #fff; color: var(--accent); border-radius: 4px; cursor: pointer; }
        button.danger { border-color: var(--bad); color: var(--bad); }
        button.primary { background: var(--accent); color: #fff; }
        form.inline { display: flex; flex-wrap: wrap; gap: 0.5rem; align-items: end; background: #fff; border: 1px solid var(--line); border-radius: 6px; padding: 0.6rem; margin: 0.5rem 0; }
        form.inline label, #login-form label { display: flex; flex-direction: column; font-size: 0.8rem; color: var(--muted); }
        input, select { font: inherit; padding: 0.25rem 0.4rem; border: 1px solid var(--line); border-radius: 4px; min-width: 6rem; }
        #login-form { max-width: 28rem; background: #fff; border: 1px solid var(--line); border-radius: 6px; padding: 1rem; display: flex; flex-direction: column; gap: 0.6rem; }
        #message { margin: 0.75rem 1rem 0; padding: 0.5rem 0.8rem; border-radius: 6px; background: #e8f1fb; border: 1px solid #b7d1ee; }
        #message.error { background: #fdecea; border-color: #f1b8b3; color: var(--bad); }
        footer { color: var(--muted); font-size: 0.8rem; padding: 0 1rem 1rem; }
        .muted { color: var(--muted); }
        .status-pending, .status-unenrolled { color: #8a5a00; font-weight: 600; }
        .status-registered { color: var(--good); }
        svg.chart { width: 100%; max-width: 640px; height: 180px; background: #fff; border: 1px solid var(--line); border-radius: 6px; }
        svg.chart .in { fill: none; stroke: var(--accent); stroke-width: 2; }
        svg.chart .out { fill: none; stroke: #c2410c; stroke-width: 2; stroke-dasharray: 6 4; }
        svg.chart .bar { fill: var(--accent); }
        svg.chart text { font-size: 11px; fill: var(--muted); }
        .legend span { margin-right: 1rem; font-size: 0.85rem; }
        .legend .in { color: var(--accent); }
        .legend .out { color: #c2410c; }
        @media (max-width: 600px) {
          main { padding: 0.5rem; }
          .card .value { font-size: 1.15rem; }
          nav button { margin-left: 0; }
        }
        """#
}
