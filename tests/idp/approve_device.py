"""The person's side of the device flow (RFC 8628), in a real headless Chromium: open the
verification URL the terminal showed, sign in on the provider's own login page, enter the user
code, and accept (or deny) the request.

    python approve_device.py URL USER_CODE USERNAME SERVER_CERT_PEM [accept|deny|wrong-password]

The password comes on stdin (never in argv). The provider's certificate (SERVER_CERT_PEM) is
trusted by its public key's hash only (Chromium's --ignore-certificate-errors-spki-list), so no
system trust store is touched. Exit status 0 when the provider showed the expected outcome, 1 otherwise.
"""

import base64
import hashlib
import sys
import tempfile

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait


def main():
    url, user_code, username, cert_file = sys.argv[1:5]
    cert = x509.load_pem_x509_certificate(open(cert_file, "rb").read())
    spki_der = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    spki = base64.b64encode(hashlib.sha256(spki_der).digest()).decode()
    action = sys.argv[5] if len(sys.argv) > 5 else "accept"
    password = sys.stdin.readline().rstrip("\n")
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    profile = tempfile.TemporaryDirectory(prefix="ktbroker-chromium-")
    for flag in [
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        f"--user-data-dir={profile.name}",
        f"--ignore-certificate-errors-spki-list={spki}",
    ]:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    wait = WebDriverWait(driver, 20)
    try:
        driver.get(url)
        wait.until(expected_conditions.presence_of_element_located((By.ID, "id_username")))
        driver.find_element(By.ID, "id_username").send_keys(username)
        driver.find_element(By.ID, "id_password").send_keys(password)
        driver.find_element(By.ID, "sign-in").click()
        if action == "wrong-password":
            wait.until(expected_conditions.presence_of_element_located((By.ID, "error")))
            print("refused at sign-in")
            return 0
        wait.until(expected_conditions.presence_of_element_located((By.NAME, "user_code")))
        driver.find_element(By.NAME, "user_code").send_keys(user_code)
        driver.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        button = wait.until(
            expected_conditions.presence_of_element_located((By.CSS_SELECTOR, f"button[value={action}]"))
        )
        button.click()
        wait.until(lambda d: "device-grant-status" in d.current_url or "device-confirm" not in d.current_url)
        print(f"{action}ed at {driver.current_url}")
        return 0
    except Exception as e:  # the test reads the reason from stderr
        print(f"browser step failed at {driver.current_url}: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    finally:
        driver.quit()
        profile.cleanup()


if __name__ == "__main__":
    sys.exit(main())
