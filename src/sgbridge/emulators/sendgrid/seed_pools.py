"""Word lists the seeded account draws from (``seeding``): names, places, reasons, campaigns.

Plain data, kept apart from the generator so the generator stays readable. Every string here
is shared by the contacts that use it, which is part of what keeps a million seeded contacts
small.
"""

from __future__ import annotations

FIRST_NAMES = (
    "James", "Mary", "Robert", "Patricia", "John", "Jennifer", "Michael", "Linda", "David", "Elizabeth",
    "William", "Barbara", "Richard", "Susan", "Joseph", "Jessica", "Thomas", "Sarah", "Charles", "Karen",
    "Christopher", "Lisa", "Daniel", "Nancy", "Matthew", "Betty", "Anthony", "Sandra", "Mark", "Margaret",
    "Donald", "Ashley", "Steven", "Kimberly", "Andrew", "Emily", "Paul", "Donna", "Joshua", "Michelle",
    "Kenneth", "Carol", "Kevin", "Amanda", "Brian", "Melissa", "Timothy", "Deborah", "Ronald", "Stephanie",
    "Jason", "Rebecca", "George", "Sharon", "Edward", "Laura", "Jeffrey", "Cynthia", "Ryan", "Amy",
    "Jacob", "Kathleen", "Nicholas", "Angela", "Gary", "Shirley", "Eric", "Emma", "Jonathan", "Brenda",
    "Stephen", "Pamela", "Larry", "Nicole", "Justin", "Anna", "Scott", "Samantha", "Brandon", "Katherine",
    "Benjamin", "Christine", "Samuel", "Debra", "Gregory", "Rachel", "Alexander", "Carolyn", "Patrick", "Janet",
    "Frank", "Maria", "Raymond", "Olivia", "Jack", "Heather", "Dennis", "Helen", "Jerry", "Catherine",
    "Lucas", "Sofia", "Mateo", "Camila", "Liam", "Valentina", "Noah", "Isabella", "Hugo", "Lea",
    "Louis", "Chloe", "Leon", "Mia", "Felix", "Hannah", "Lukas", "Lena", "Jan", "Anouk",
    "Daan", "Sanne", "Oliver", "Amelia", "Harry", "Isla", "Aarav", "Ananya", "Vihaan", "Diya",
    "Hiroshi", "Yuki", "Kenji", "Sakura", "Wei", "Mei", "Jun", "Li", "Min-jun", "Seo-yeon",
    "Joao", "Ana", "Pedro", "Beatriz", "Diego", "Lucia", "Pablo", "Carmen", "Marco", "Giulia",
)

LAST_NAMES = (
    "Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Rodriguez", "Martinez",
    "Hernandez", "Lopez", "Gonzalez", "Wilson", "Anderson", "Thomas", "Taylor", "Moore", "Jackson", "Martin",
    "Lee", "Perez", "Thompson", "White", "Harris", "Sanchez", "Clark", "Ramirez", "Lewis", "Robinson",
    "Walker", "Young", "Allen", "King", "Wright", "Scott", "Torres", "Nguyen", "Hill", "Flores",
    "Green", "Adams", "Nelson", "Baker", "Hall", "Rivera", "Campbell", "Mitchell", "Carter", "Roberts",
    "Gomez", "Phillips", "Evans", "Turner", "Diaz", "Parker", "Cruz", "Edwards", "Collins", "Reyes",
    "Stewart", "Morris", "Morales", "Murphy", "Cook", "Rogers", "Gutierrez", "Ortiz", "Morgan", "Cooper",
    "Peterson", "Bailey", "Reed", "Kelly", "Howard", "Ramos", "Kim", "Cox", "Ward", "Richardson",
    "Muller", "Schmidt", "Schneider", "Fischer", "Weber", "Meyer", "Wagner", "Becker", "Schulz", "Hoffmann",
    "Martin", "Bernard", "Dubois", "Thomas", "Robert", "Richard", "Petit", "Durand", "Leroy", "Moreau",
    "de Jong", "Jansen", "de Vries", "van den Berg", "Bakker", "Visser", "Rossi", "Russo", "Ferrari", "Esposito",
    "Silva", "Santos", "Oliveira", "Souza", "Pereira", "Costa", "Sato", "Suzuki", "Takahashi", "Tanaka",
    "Wang", "Li", "Zhang", "Liu", "Chen", "Patel", "Sharma", "Singh", "Kumar", "Gupta",
    "O'Brien", "O'Connor", "Murray", "Quinn", "Kowalski", "Nowak", "Novak", "Horvat", "Andersen", "Nielsen",
)

# (city, state / province / region, country, postal codes); the city pattern of the contacts spec.
LOCATIONS: tuple[tuple[str, str, str, tuple[str, ...]], ...] = (
    ("New York", "NY", "United States", ("10001", "10011", "10016", "10025")),
    ("Los Angeles", "CA", "United States", ("90012", "90026", "90034", "90045")),
    ("Chicago", "IL", "United States", ("60601", "60614", "60622")),
    ("Houston", "TX", "United States", ("77002", "77006", "77019")),
    ("Phoenix", "AZ", "United States", ("85004", "85016")),
    ("Philadelphia", "PA", "United States", ("19103", "19106", "19147")),
    ("San Antonio", "TX", "United States", ("78205", "78209")),
    ("San Diego", "CA", "United States", ("92101", "92103", "92109")),
    ("Dallas", "TX", "United States", ("75201", "75204", "75206")),
    ("Austin", "TX", "United States", ("78701", "78704", "78745")),
    ("Seattle", "WA", "United States", ("98101", "98103", "98109", "98115")),
    ("Denver", "CO", "United States", ("80202", "80205", "80209")),
    ("Boston", "MA", "United States", ("02108", "02116", "02134")),
    ("Atlanta", "GA", "United States", ("30303", "30308", "30318")),
    ("Miami", "FL", "United States", ("33130", "33131", "33139")),
    ("Portland", "OR", "United States", ("97201", "97205", "97214")),
    ("Minneapolis", "MN", "United States", ("55401", "55408")),
    ("Nashville", "TN", "United States", ("37203", "37206")),
    ("Toronto", "ON", "Canada", ("M5V 2T6", "M4W 1A8", "M6G 3B1")),
    ("Vancouver", "BC", "Canada", ("V6B 1A1", "V5K 0A1")),
    ("Montreal", "QC", "Canada", ("H2X 1Y4", "H3B 2Y5")),
    ("Mexico City", "CDMX", "Mexico", ("06600", "03100", "11000")),
    ("London", "England", "United Kingdom", ("EC1A 1BB", "SW1A 1AA", "N1 9GU", "E14 5AB")),
    ("Manchester", "England", "United Kingdom", ("M1 1AE", "M4 5JD")),
    ("Edinburgh", "Scotland", "United Kingdom", ("EH1 1YZ", "EH8 9YL")),
    ("Dublin", "Leinster", "Ireland", ("D02 X285", "D08 VF8H")),
    ("Paris", "Ile-de-France", "France", ("75001", "75011", "75015", "75018")),
    ("Lyon", "Auvergne-Rhone-Alpes", "France", ("69001", "69003")),
    ("Berlin", "Berlin", "Germany", ("10115", "10243", "10437", "12043")),
    ("Munich", "Bavaria", "Germany", ("80331", "80469", "80799")),
    ("Hamburg", "Hamburg", "Germany", ("20095", "22765")),
    ("Amsterdam", "North Holland", "Netherlands", ("1012 JS", "1017 CE", "1071 XX")),
    ("Rotterdam", "South Holland", "Netherlands", ("3011 AD", "3032 AC")),
    ("Brussels", "Brussels", "Belgium", ("1000", "1050")),
    ("Madrid", "Madrid", "Spain", ("28001", "28004", "28013")),
    ("Barcelona", "Catalonia", "Spain", ("08001", "08010", "08036")),
    ("Lisbon", "Lisbon", "Portugal", ("1100-148", "1200-195")),
    ("Rome", "Lazio", "Italy", ("00184", "00186")),
    ("Milan", "Lombardy", "Italy", ("20121", "20145")),
    ("Zurich", "Zurich", "Switzerland", ("8001", "8004")),
    ("Vienna", "Vienna", "Austria", ("1010", "1070")),
    ("Stockholm", "Stockholm", "Sweden", ("111 20", "118 50")),
    ("Copenhagen", "Capital Region", "Denmark", ("1050", "2200")),
    ("Oslo", "Oslo", "Norway", ("0150", "0555")),
    ("Warsaw", "Masovia", "Poland", ("00-001", "02-677")),
    ("Sao Paulo", "SP", "Brazil", ("01310-100", "04538-133")),
    ("Buenos Aires", "CABA", "Argentina", ("C1001", "C1425")),
    ("Bogota", "Bogota D.C.", "Colombia", ("110111", "110221")),
    ("Sydney", "NSW", "Australia", ("2000", "2010", "2060")),
    ("Melbourne", "VIC", "Australia", ("3000", "3121")),
    ("Auckland", "Auckland", "New Zealand", ("1010", "1021")),
    ("Tokyo", "Tokyo", "Japan", ("100-0001", "150-0002", "160-0022")),
    ("Osaka", "Osaka", "Japan", ("530-0001", "542-0076")),
    ("Seoul", "Seoul", "South Korea", ("04524", "06164")),
    ("Singapore", "Singapore", "Singapore", ("018956", "238859")),
    ("Bangalore", "Karnataka", "India", ("560001", "560034")),
    ("Mumbai", "Maharashtra", "India", ("400001", "400050")),
    ("Cape Town", "Western Cape", "South Africa", ("8001", "8005")),
    ("Tel Aviv", "Tel Aviv", "Israel", ("6100000", "6473424")),
)

# Address domains, most common first (the generator favours the head of the tuple).
EMAIL_DOMAINS = (
    "gmail.com", "gmail.com", "gmail.com", "gmail.com", "yahoo.com", "outlook.com", "hotmail.com", "icloud.com",
    "aol.com", "proton.me", "gmx.de", "web.de", "orange.fr", "free.fr", "libero.it", "yahoo.co.uk",
    "btinternet.com", "comcast.net", "me.com", "live.com", "mail.com", "acme-corp.com", "globex.io",
    "initech.com", "umbrella-labs.org", "hooli.xyz", "example-university.edu",
)
# Misspelt domains: the invalid e-mail list is mostly these.
TYPO_DOMAINS = ("gmial.com", "gmai.com", "yaho.com", "hotmial.com", "outlok.com", "gnail.com", "icloud.co")
INVALID_REASONS = (
    "Mail domain mentioned in email address is unknown",
    "Known bad domain",
    "Invalid email address: domain has no MX record",
)
BOUNCE_REASONS = (
    ("550 5.1.1 The email account that you tried to reach does not exist. Please try double-checking the "
     "recipient's email address for typos or unnecessary spaces.", "5.1.1"),
    ("550 5.1.1 <{email}>: Recipient address rejected: User unknown in virtual alias table", "5.1.1"),
    ("552 5.2.2 The email account that you tried to reach is over quota.", "5.2.2"),
    ("550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup", "5.1.10"),
    ("554 5.7.1 Service unavailable; Client host blocked using zen.spamhaus.org", "5.7.1"),
)
BLOCK_REASONS = (
    ("421 4.7.0 [TSS04] Messages temporarily deferred due to user complaints", "4.7.0"),
    ("550 5.7.1 Our system has detected that this message is likely unsolicited mail.", "5.7.1"),
    ("554 5.7.1 Message rejected due to local policy", "5.7.1"),
    ("451 4.7.650 The mail server has been temporarily rate limited due to IP reputation.", "4.7.650"),
)
SENDING_IPS = ("167.89.1.10", "167.89.1.11", "149.72.34.20", "149.72.34.21", "198.37.150.3")
PLANS = ("free", "free", "free", "starter", "starter", "pro", "enterprise")
FAVORITE_CATEGORIES = ("books", "electronics", "garden", "fashion", "sports", "toys", "kitchen", "travel")

# (name, field type) of the seeded custom fields.
CUSTOM_FIELDS = (
    ("plan", "Text"), ("lifetime_value", "Number"), ("signup_date", "Date"), ("loyalty_points", "Number"),
    ("favorite_category", "Text"), ("last_purchase_date", "Date"),
)

# The first lists, largest first (membership is skewed towards the head); more are numbered.
LIST_NAMES = (
    "Newsletter", "Customers", "Product updates", "Trial users", "Webinar attendees", "VIP",
    "Event: Spring Summit", "Churned customers", "Beta testers", "Partners",
)
ASM_GROUPS = (
    ("Newsletter", "Our weekly newsletter"), ("Product updates", "New features and release notes"),
    ("Promotions", "Discounts and special offers"), ("Surveys", "Feedback requests"),
)
SINGLE_SEND_NAMES = (
    "Spring sale", "Weekly digest", "Product launch", "Webinar invitation", "Customer survey", "Holiday offers",
    "Black Friday early access", "Welcome back", "Release notes", "Year in review",
)
CATEGORIES = ("newsletter", "promotions", "product", "events", "survey", "seasonal", "onboarding")
