"""A real browser for the web console: Debian's chromium, headless, driven by Selenium through Debian's
chromedriver, inside a network namespace (the administrator's), so that it reaches the management API as an
operator would. The API's TLS certificate is trusted by its public key's SHA-256 (chromium's SPKI pin), not
by ignoring certificate errors.

The browser runs while this thread sits in the namespace (setns): chromedriver and chromium are started from
it and inherit it, and Selenium's own connections to chromedriver's loopback port are made from it. `close()`
returns the thread to the namespace it came from.
"""
import base64, ctypes, importlib.util, os, subprocess, time

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL("libc.so.6", use_errno=True)


def missing():
    """Why the browser cannot run here, or None."""
    for path in ("/usr/bin/chromium", "/usr/bin/chromedriver"):
        if not os.path.exists(path):
            return f"{path} is missing (apt-get install chromium chromium-driver)"
    if importlib.util.find_spec("selenium") is None:
        return "Python's selenium is missing (pip install selenium)"
    return None


def _setns(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        if _libc.setns(fd, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns({path})")
    finally:
        os.close(fd)


def spki_pin(certificate):
    """base64(SHA-256(SubjectPublicKeyInfo)) of a PEM certificate, as --ignore-certificate-errors-spki-list takes it."""
    key = subprocess.run(["openssl", "x509", "-in", certificate, "-pubkey", "-noout"], check=True, capture_output=True).stdout
    der = subprocess.run(["openssl", "pkey", "-pubin", "-outform", "DER"], input=key, check=True, capture_output=True).stdout
    digest = subprocess.run(["openssl", "dgst", "-sha256", "-binary"], input=der, check=True, capture_output=True).stdout
    return base64.b64encode(digest).decode()


class ConsoleBrowser:
    def __init__(self, namespace, certificate, screenshots):
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
        self.screenshots = screenshots
        os.makedirs(screenshots, exist_ok=True)
        self._home = os.open("/proc/self/ns/net", os.O_RDONLY)
        _setns(f"/var/run/netns/{namespace}")
        options = webdriver.ChromeOptions()
        options.binary_location = "/usr/bin/chromium"
        for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,900",
                         "--no-first-run", "--disable-background-networking", "--disable-component-update",
                         f"--ignore-certificate-errors-spki-list={spki_pin(certificate)}"):
            options.add_argument(argument)
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        os.environ["SE_OFFLINE"] = "true"
        try:
            self.driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
        except Exception:
            self._go_home()
            raise
        self.console = []

    def _go_home(self):
        if self._home is not None:
            if _libc.setns(self._home, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "setns back to the test's namespace")
            os.close(self._home)
            self._home = None

    def close(self):
        try:
            self.collect_console()
            self.driver.quit()
            self.driver = None
        finally:
            self._go_home()

    def collect_console(self):
        """The browser console's entries since the last call, kept in `self.console`."""
        entries = self.driver.get_log("browser")
        self.console += entries
        return entries

    def errors(self, allowed=()):
        """Console entries of level SEVERE, except those whose message contains one of `allowed` (the responses a
        step expects, such as a reader's 403, which chromium logs as a failed resource load)."""
        if self.driver is not None:
            self.collect_console()
        return [e for e in self.console if e.get("level") == "SEVERE" and not any(a in e.get("message", "") for a in allowed)]

    def open(self, url):
        self.driver.get(url)

    def find(self, css):
        from selenium.webdriver.common.by import By
        return self.driver.find_element(By.CSS_SELECTOR, css)

    def finds(self, css):
        from selenium.webdriver.common.by import By
        return self.driver.find_elements(By.CSS_SELECTOR, css)

    def click(self, css, timeout=10):
        """Clicks the element, found again if the page redrew it meanwhile (it does every 3 s)."""
        from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.find(css).click()
                return
            except (NoSuchElementException, StaleElementReferenceException):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def text(self, css="body"):
        try:
            return self.find(css).text
        except Exception:
            return ""

    def wait_text(self, needle, css="body", timeout=15):
        """Waits until the element's text contains `needle` (the page reads the API every 3 s)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if needle in self.text(css):
                return True
            time.sleep(0.25)
        return False

    def wait_gone(self, needle, css="body", timeout=15):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if needle not in self.text(css):
                return True
            time.sleep(0.25)
        return False

    def show(self, view):
        """Clicks the view's tab and waits until the page shows it."""
        self.find(f'#nav a[data-view="{view}"]').click()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.driver.execute_script("return document.getElementById('view').dataset.view") == view:
                return True
            time.sleep(0.1)
        return False

    def fill(self, form_css, values, timeout=10):
        """Fills the form's fields, from the first again if the page redrew it meanwhile (once a field has the
        focus, the page waits for the operator and redraws no more)."""
        from selenium.common.exceptions import ElementNotInteractableException, NoSuchElementException, StaleElementReferenceException
        from selenium.webdriver.support.ui import Select
        deadline = time.monotonic() + timeout
        while True:
            try:
                form = self.find(form_css)
                for name, value in values.items():
                    field = form.find_element("css selector", f'[name="{name}"]')
                    if field.tag_name == "select":
                        Select(field).select_by_value(value)
                    else:
                        field.clear()
                        field.send_keys(str(value))
                return form
            except (ElementNotInteractableException, NoSuchElementException, StaleElementReferenceException):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def screenshot(self, name, width=1280, height=900):
        """A PNG of the whole page at this width, below the fold included (DevTools' captureBeyondViewport)."""
        self.driver.set_window_size(width, height)
        time.sleep(0.3)
        shot = self.driver.execute_cdp_cmd("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True})
        path = os.path.join(self.screenshots, f"{name}.png")
        with open(path, "wb") as f:
            f.write(base64.b64decode(shot["data"]))
        return path
