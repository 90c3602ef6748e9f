"""The intake page's and the reminders' words in English, German and Italian.

Every language has every message (a unit test checks); ``{placeholders}`` are filled by the
templates. The wording follows the seeds: the customer creates the key in Mistral's
console, names it for its use, sets an expiry of at most the allowed lifetime, and billing
must be set up.
"""

from __future__ import annotations

LANGUAGES = ("en", "de", "it")
DEFAULT = "en"

EN = {
    "title": "New Mistral API key for {integration}",
    "intro": "This page takes the new Mistral AI API key for {integration}. The key is "
    "checked with Mistral before anything is stored, and goes live at once.",
    "current": "The key in use now ends in {fingerprint} and expires on {expires}.",
    "steps_title": "How to create the key",
    "step_console": "Sign in to Mistral's console (console.mistral.ai) and open API keys.",
    "step_billing": "Billing must be set up for the organization: a payment method and a "
    "plan. Without it Mistral refuses every call.",
    "step_create": "Create a new key named {key_name} in the workspace {workspace}.",
    "step_create_any": "Create a new key and give it a name that says what it is for, "
    "e.g. {key_name}.",
    "step_expiry": "Choose an expiry date no later than {max_date} (at most {max_days} days).",
    "step_copy": "Copy the key: Mistral shows it only once. Paste it below with its expiry date.",
    "form_title": "Hand over the key",
    "label_key": "New API key",
    "hint_key": "Paste the whole key, without spaces.",
    "label_expiry": "Expiry date of the key (as set in the console)",
    "submit": "Check and hand over",
    "link_expires": "This link works once and until {until}.",
    "accepted_title": "Thank you: the key is live",
    "stored_title": "Thank you: the key is stored",
    "accepted": "The key ending in {fingerprint} was checked with Mistral and is live now.",
    "accepted_not_live": "The key ending in {fingerprint} was checked with Mistral and "
    "stored. Putting it live did not finish yet; our team is alerted and completes it. "
    "You need not do anything.",
    "accepted_delete": "Once it runs, you may delete the old key in Mistral's console.",
    "invalid": "Mistral does not accept this key: it is wrong, revoked or expired. "
    "Check that you copied the whole key.",
    "billing": "Mistral refuses the key because billing is not set up for the organization "
    "(no payment method or plan, no credit, or the spending limit is reached). Set it up in "
    "the console, then try again.",
    "plan": "The key works, but the model {model} is not on the organization's plan. Choose a "
    "plan with this model, or ask us.",
    "busy": "Mistral is busy and could not check the key. Please try again in a minute.",
    "expiry_missing": "Please give the key's expiry date.",
    "expiry_format": "The expiry date could not be read: use the date field (YYYY-MM-DD).",
    "expiry_past": "The expiry date is in the past. Please check the date in the console.",
    "expiry_beyond": "The expiry date is more than {max_days} days away. Mistral allows at "
    "most that: please check the date in the console.",
    "key_missing": "Please paste the key.",
    "key_whitespace": "The key contains a space or a line break. Copy it again, exactly as "
    "Mistral shows it.",
    "key_characters": "The key contains a character that is not part of a Mistral key "
    "(perhaps an invisible one, copied with it). Copy it again, exactly as Mistral shows it.",
    "not_saved": "Nothing was stored; the link is still valid.",
    "attempts_left": "Attempts left with this link: {left}.",
    "conflict": "The key could not be stored just now. Please try again.",
    "unavailable_title": "Please try again in a few minutes",
    "unavailable": "This page cannot be used just now: our key store does not answer. Your "
    "link still works; please try again in a few minutes.",
    "gone_title": "This link is no longer valid",
    "gone": "The link was used already, has expired or was withdrawn. Please ask your contact "
    "for a new link.",
    "forbidden_title": "The form could not be accepted",
    "forbidden": "The form was not sent from this page. Please open the link again and use "
    "the form on it.",
    "too_large_title": "Too much data",
    "too_large": "The form sent more than a key. Please paste only the key.",
    "mail_subject_warn": "Your Mistral API key for {integration} expires in {days} days",
    "mail_subject_critical": "Urgent: your Mistral API key for {integration} expires in "
    "{days} days",
    "mail_greeting": "Hello,",
    "mail_body": "the Mistral AI API key for {integration} expires on {expires} "
    "({days} days from now). Please create a new key in Mistral's console and hand it over on "
    "this page:",
    "mail_link_note": "The link works once and until {until}. It checks the key with Mistral "
    "before anything is stored.",
    "mail_ignore": "If you have already sent a new key, you may ignore this message.",
}

DE = {
    "title": "Neuer Mistral-API-Schlüssel für {integration}",
    "intro": "Auf dieser Seite übergeben Sie den neuen Mistral-AI-API-Schlüssel für "
    "{integration}. Der Schlüssel wird bei Mistral geprüft, bevor etwas gespeichert wird, "
    "und ist danach sofort aktiv.",
    "current": "Der aktuelle Schlüssel endet auf {fingerprint} und läuft am {expires} ab.",
    "steps_title": "So erstellen Sie den Schlüssel",
    "step_console": "Melden Sie sich in der Mistral-Konsole (console.mistral.ai) an und "
    "öffnen Sie „API keys“.",
    "step_billing": "Für die Organisation muss die Abrechnung eingerichtet sein: eine "
    "Zahlungsmethode und ein Tarif. Ohne sie lehnt Mistral jeden Aufruf ab.",
    "step_create": "Erstellen Sie einen neuen Schlüssel mit dem Namen {key_name} im "
    "Workspace {workspace}.",
    "step_create_any": "Erstellen Sie einen neuen Schlüssel mit einem aussagekräftigen Namen, "
    "z. B. {key_name}.",
    "step_expiry": "Wählen Sie ein Ablaufdatum spätestens am {max_date} (höchstens "
    "{max_days} Tage).",
    "step_copy": "Kopieren Sie den Schlüssel: Mistral zeigt ihn nur einmal an. Fügen Sie "
    "ihn unten mit seinem Ablaufdatum ein.",
    "form_title": "Schlüssel übergeben",
    "label_key": "Neuer API-Schlüssel",
    "hint_key": "Fügen Sie den ganzen Schlüssel ohne Leerzeichen ein.",
    "label_expiry": "Ablaufdatum des Schlüssels (wie in der Konsole gewählt)",
    "submit": "Prüfen und übergeben",
    "link_expires": "Dieser Link gilt einmal und bis {until}.",
    "accepted_title": "Vielen Dank: der Schlüssel ist aktiv",
    "stored_title": "Vielen Dank: der Schlüssel ist gespeichert",
    "accepted": "Der Schlüssel mit der Endung {fingerprint} wurde bei Mistral geprüft und ist "
    "jetzt aktiv.",
    "accepted_not_live": "Der Schlüssel mit der Endung {fingerprint} wurde bei Mistral "
    "geprüft und gespeichert. Die Aktivierung ist noch nicht abgeschlossen; unser Team ist "
    "informiert und schließt sie ab. Sie müssen nichts weiter tun.",
    "accepted_delete": "Sobald er läuft, können Sie den alten Schlüssel in der "
    "Mistral-Konsole löschen.",
    "invalid": "Mistral akzeptiert diesen Schlüssel nicht: er ist falsch, widerrufen oder "
    "abgelaufen. Prüfen Sie, ob Sie den ganzen Schlüssel kopiert haben.",
    "billing": "Mistral lehnt den Schlüssel ab, weil die Abrechnung der Organisation nicht "
    "eingerichtet ist (keine Zahlungsmethode oder kein Tarif, kein Guthaben oder das "
    "Ausgabenlimit ist erreicht). Richten Sie sie in der Konsole ein und versuchen Sie es "
    "erneut.",
    "plan": "Der Schlüssel funktioniert, aber das Modell {model} ist nicht im Tarif der "
    "Organisation enthalten. Wählen Sie einen Tarif mit diesem Modell oder fragen Sie uns.",
    "busy": "Mistral ist ausgelastet und konnte den Schlüssel nicht prüfen. Bitte versuchen "
    "Sie es in einer Minute erneut.",
    "expiry_missing": "Bitte geben Sie das Ablaufdatum des Schlüssels an.",
    "expiry_format": "Das Ablaufdatum konnte nicht gelesen werden: bitte das Datumsfeld "
    "verwenden (JJJJ-MM-TT).",
    "expiry_past": "Das Ablaufdatum liegt in der Vergangenheit. Bitte prüfen Sie das Datum "
    "in der Konsole.",
    "expiry_beyond": "Das Ablaufdatum liegt mehr als {max_days} Tage in der Zukunft. Mistral "
    "erlaubt höchstens so viel: bitte prüfen Sie das Datum in der Konsole.",
    "key_missing": "Bitte fügen Sie den Schlüssel ein.",
    "key_whitespace": "Der Schlüssel enthält ein Leerzeichen oder einen Zeilenumbruch. "
    "Kopieren Sie ihn erneut, genau wie Mistral ihn anzeigt.",
    "key_characters": "Der Schlüssel enthält ein Zeichen, das nicht zu einem Mistral-Schlüssel "
    "gehört (vielleicht ein unsichtbares, mitkopiertes). Kopieren Sie ihn erneut, genau wie "
    "Mistral ihn anzeigt.",
    "not_saved": "Es wurde nichts gespeichert; der Link ist weiterhin gültig.",
    "attempts_left": "Verbleibende Versuche mit diesem Link: {left}.",
    "conflict": "Der Schlüssel konnte gerade nicht gespeichert werden. Bitte versuchen Sie "
    "es erneut.",
    "unavailable_title": "Bitte versuchen Sie es in einigen Minuten erneut",
    "unavailable": "Diese Seite ist gerade nicht nutzbar: unser Schlüsselspeicher antwortet "
    "nicht. Ihr Link bleibt gültig; bitte versuchen Sie es in einigen Minuten erneut.",
    "gone_title": "Dieser Link ist nicht mehr gültig",
    "gone": "Der Link wurde bereits verwendet, ist abgelaufen oder wurde zurückgezogen. "
    "Bitte fragen Sie Ihren Ansprechpartner nach einem neuen Link.",
    "forbidden_title": "Das Formular konnte nicht angenommen werden",
    "forbidden": "Das Formular wurde nicht von dieser Seite gesendet. Bitte öffnen Sie den "
    "Link erneut und verwenden Sie das Formular dort.",
    "too_large_title": "Zu viele Daten",
    "too_large": "Das Formular enthielt mehr als einen Schlüssel. Bitte fügen Sie nur den "
    "Schlüssel ein.",
    "mail_subject_warn": "Ihr Mistral-API-Schlüssel für {integration} läuft in {days} Tagen ab",
    "mail_subject_critical": "Dringend: Ihr Mistral-API-Schlüssel für {integration} läuft in "
    "{days} Tagen ab",
    "mail_greeting": "Guten Tag,",
    "mail_body": "der Mistral-AI-API-Schlüssel für {integration} läuft am {expires} ab (in "
    "{days} Tagen). Bitte erstellen Sie in der Mistral-Konsole einen neuen Schlüssel und "
    "übergeben Sie ihn auf dieser Seite:",
    "mail_link_note": "Der Link gilt einmal und bis {until}. Der Schlüssel wird bei Mistral "
    "geprüft, bevor etwas gespeichert wird.",
    "mail_ignore": "Wenn Sie bereits einen neuen Schlüssel übergeben haben, können Sie diese "
    "Nachricht ignorieren.",
}

IT = {
    "title": "Nuova chiave API Mistral per {integration}",
    "intro": "Questa pagina riceve la nuova chiave API di Mistral AI per {integration}. La "
    "chiave viene verificata con Mistral prima di essere salvata ed è attiva subito.",
    "current": "La chiave in uso termina con {fingerprint} e scade il {expires}.",
    "steps_title": "Come creare la chiave",
    "step_console": "Accedi alla console Mistral (console.mistral.ai) e apri API keys.",
    "step_billing": "La fatturazione dell'organizzazione deve essere configurata: un metodo "
    "di pagamento e un piano. Senza, Mistral rifiuta ogni chiamata.",
    "step_create": "Crea una nuova chiave con il nome {key_name} nel workspace {workspace}.",
    "step_create_any": "Crea una nuova chiave con un nome che ne indichi l'uso, ad esempio "
    "{key_name}.",
    "step_expiry": "Scegli una data di scadenza non oltre il {max_date} (al massimo "
    "{max_days} giorni).",
    "step_copy": "Copia la chiave: Mistral la mostra una sola volta. Incollala qui sotto "
    "con la sua data di scadenza.",
    "form_title": "Consegna la chiave",
    "label_key": "Nuova chiave API",
    "hint_key": "Incolla la chiave intera, senza spazi.",
    "label_expiry": "Data di scadenza della chiave (come impostata nella console)",
    "submit": "Verifica e consegna",
    "link_expires": "Questo link vale una sola volta e fino al {until}.",
    "accepted_title": "Grazie: la chiave è attiva",
    "stored_title": "Grazie: la chiave è salvata",
    "accepted": "La chiave che termina con {fingerprint} è stata verificata con Mistral ed è "
    "attiva ora.",
    "accepted_not_live": "La chiave che termina con {fingerprint} è stata verificata con "
    "Mistral e salvata. L'attivazione non è ancora completa; il nostro team è stato avvisato "
    "e la completa. Non devi fare altro.",
    "accepted_delete": "Quando è in funzione, puoi eliminare la vecchia chiave nella console "
    "Mistral.",
    "invalid": "Mistral non accetta questa chiave: è errata, revocata o scaduta. Verifica di "
    "aver copiato la chiave intera.",
    "billing": "Mistral rifiuta la chiave perché la fatturazione dell'organizzazione non è "
    "configurata (nessun metodo di pagamento o piano, credito esaurito o limite di spesa "
    "raggiunto). Configurala nella console, poi riprova.",
    "plan": "La chiave funziona, ma il modello {model} non è incluso nel piano "
    "dell'organizzazione. Scegli un piano con questo modello, o contattaci.",
    "busy": "Mistral è occupato e non ha potuto verificare la chiave. Riprova tra un minuto.",
    "expiry_missing": "Indica la data di scadenza della chiave.",
    "expiry_format": "La data di scadenza non è leggibile: usa il campo data (AAAA-MM-GG).",
    "expiry_past": "La data di scadenza è nel passato. Controlla la data nella console.",
    "expiry_beyond": "La data di scadenza è a più di {max_days} giorni. Mistral non consente "
    "di più: controlla la data nella console.",
    "key_missing": "Incolla la chiave.",
    "key_whitespace": "La chiave contiene uno spazio o un a capo. Copiala di nuovo, "
    "esattamente come la mostra Mistral.",
    "key_characters": "La chiave contiene un carattere che non fa parte di una chiave Mistral "
    "(forse uno invisibile, copiato insieme). Copiala di nuovo, esattamente come la mostra "
    "Mistral.",
    "not_saved": "Non è stato salvato nulla; il link è ancora valido.",
    "attempts_left": "Tentativi rimasti con questo link: {left}.",
    "conflict": "Non è stato possibile salvare la chiave in questo momento. Riprova.",
    "unavailable_title": "Riprova tra qualche minuto",
    "unavailable": "Questa pagina non è utilizzabile in questo momento: il nostro archivio "
    "delle chiavi non risponde. Il link resta valido; riprova tra qualche minuto.",
    "gone_title": "Questo link non è più valido",
    "gone": "Il link è già stato usato, è scaduto o è stato ritirato. Chiedi un nuovo link al "
    "tuo referente.",
    "forbidden_title": "Il modulo non può essere accettato",
    "forbidden": "Il modulo non è stato inviato da questa pagina. Riapri il link e usa il "
    "modulo che contiene.",
    "too_large_title": "Troppi dati",
    "too_large": "Il modulo conteneva più di una chiave. Incolla solo la chiave.",
    "mail_subject_warn": "La tua chiave API Mistral per {integration} scade tra {days} giorni",
    "mail_subject_critical": "Urgente: la tua chiave API Mistral per {integration} scade tra "
    "{days} giorni",
    "mail_greeting": "Buongiorno,",
    "mail_body": "la chiave API di Mistral AI per {integration} scade il {expires} (tra "
    "{days} giorni). Crea una nuova chiave nella console Mistral e consegnala su questa "
    "pagina:",
    "mail_link_note": "Il link vale una sola volta e fino al {until}. La chiave viene "
    "verificata con Mistral prima di essere salvata.",
    "mail_ignore": "Se hai già consegnato una nuova chiave, puoi ignorare questo messaggio.",
}

STRINGS: dict[str, dict[str, str]] = {"en": EN, "de": DE, "it": IT}


def strings(language: str) -> dict[str, str]:
    return STRINGS.get(language, EN)


def negotiate(accept_language: str | None) -> str:
    """The first of our languages in ``Accept-Language`` (by q), else English."""
    best, best_q = DEFAULT, -1.0
    for part in (accept_language or "").split(",")[:20]:
        tag, _, params = part.strip().partition(";")
        lang = tag.strip().lower()[:2]
        q = 1.0
        if params.strip().startswith("q="):
            try:
                q = float(params.strip()[2:])
            except ValueError:
                continue
        if lang in STRINGS and q > best_q:
            best, best_q = lang, q
    return best


def format_date(moment_iso: str, language: str) -> str:
    """``2026-12-24`` as people write it: 24.12.2026 (de), 24/12/2026 (it), 2026-12-24 (en)."""
    year, month, day = moment_iso[:10].split("-")
    if language == "de":
        return f"{day}.{month}.{year}"
    if language == "it":
        return f"{day}/{month}/{year}"
    return f"{year}-{month}-{day}"
