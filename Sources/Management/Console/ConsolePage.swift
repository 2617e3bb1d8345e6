/// The web console's page (docs/management.md "The console"): a shell with no data of its own. Every figure
/// it shows comes from the API with the operator's token or client certificate, so the page itself is served
/// to anyone who reaches the listener, like a login page; its script and style come from the same listener
/// (no external assets, so that it works on a management network with nothing beyond the device).
enum ConsolePage {
    static let html = #"""
        <!DOCTYPE html>
        <html lang="en">
        <head>
        <meta charset="utf-8">
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <title>IKEProxy console</title>
        <link rel="stylesheet" href="/ui/console.css">
        <link rel="icon" href="data:,">
        <script src="/ui/console.js" defer></script>
        </head>
        <body>
        <header>
          <h1>IKEProxy</h1>
          <nav id="nav" hidden>
            <a href="#overview" data-view="overview">Overview</a>
            <a href="#terminals" data-view="terminals">Terminals</a>
            <a href="#sas" data-view="sas">SAs</a>
            <a href="#charts" data-view="charts">Charts</a>
            <a href="#policy" data-view="policy">Policy</a>
            <a href="#audit" data-view="audit">Audit</a>
            <button id="logout" type="button">Log out</button>
          </nav>
        </header>
        <div id="message" role="status" hidden></div>
        <main id="login" hidden>
          <form id="login-form">
            <h2>Log in</h2>
            <p>An administrator's bearer token, as in the daemon's <code>management.administrators</code>.</p>
            <label>Token <input id="token" type="password" autocomplete="current-password" required></label>
            <button type="submit">Log in</button>
            <p>With a client certificate the browser presents, no token is needed:</p>
            <button id="use-certificate" type="button">Use my client certificate</button>
          </form>
        </main>
        <main id="view" hidden></main>
        <footer id="updated"></footer>
        </body>
        </html>
        """#
}
