"""Real client sessions against certrelay for the demo, printed as a short transcript."""
import smtplib
import ssl
import sys

host, port, work = sys.argv[1], int(sys.argv[2]), sys.argv[3]


def show(command, reply):
    print(f"  {command:<40} -> {reply}")


def session(title, cert, recipients):
    print(f"\n== {title}")
    context = ssl.create_default_context(cafile=f"{work}/ca.crt")
    context.check_hostname = False
    if cert:
        context.load_cert_chain(f"{work}/{cert}.crt", f"{work}/{cert}.key")
    with smtplib.SMTP(host, port, timeout=10) as smtp:
        code, _ = smtp.ehlo("client.demo.example")
        show("EHLO client.demo.example", code)
        code, text = smtp.starttls(context=context)
        show(f"STARTTLS ({'certificate ' + cert if cert else 'no certificate'})",
             f"{code} {text.decode()} [{smtp.sock.version()}]")
        smtp.ehlo("client.demo.example")
        code, text = smtp.mail("alice@client.demo.example")
        show("MAIL FROM:<alice@client.demo.example>", f"{code} {text.decode()}")
        accepted = 0
        for rcpt in recipients:
            code, text = smtp.rcpt(rcpt)
            accepted += code == 250
            show(f"RCPT TO:<{rcpt}>", f"{code} {text.decode()}")
        if accepted:
            code, text = smtp.data(b"Subject: certrelay demo\r\n\r\nHello through the proxy.\r\n")
            show("DATA ... .", f"{code} {text.decode()}")


session("trusted client: certificate listed in relay_clientcerts", "listed",
        ["bob@remote.example"])
session("untrusted client: valid certificate, not listed", "unlisted",
        ["bob@remote.example", "carol@local.example"])
session("anonymous client: no certificate", None, ["bob@remote.example", "carol@local.example"])
