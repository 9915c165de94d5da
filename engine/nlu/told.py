"""What a turn tells by what it means rather than by its name, for enum slots that declare it.

- A decision's outcome (``Slot.outcomes``): "the office can go ahead and book it" (it went
  through), "that code needs nothing from us" (nothing was needed), "the office would have to put
  a request in first" (nothing was started), "we'd want the notes before anyone looks at it"
  (still open), "it came back a no" (refused).
- An objection told as a story (``Slot.objections``): "every buck goes to payroll" (the price),
  "we already pay another outfit for exactly this" (a vendor), "five of us and a group chat, it'd
  be overkill" (no need), "we're mid-launch, the timing's terrible" (timing).

Each slot maps these meanings to its own values; they are heard only where none of the slot's
synonyms is said. A negated one ("they can't go ahead and schedule") tells nothing; of several,
the last one said wins, as with synonyms, except that "go ahead" gives way to "nothing was
needed" (it follows from it).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from engine.nlu.text import negated, normalise
from engine.schema_model import Objection, Outcome

_SUBMIT = r"(?:put|send|submit|file|get|start|open|fax|call)"
_REQUEST = r"(?:request|case|auth|authorization|submission|pa|precert|referral)"
_PAPERS = r"(?:clinicals?|notes|records|documentation|chart|paperwork|more info(?:rmation)?|justification)"

_PATTERNS: dict[Outcome | Objection, re.Pattern[str]] = {
    # "the provider can go ahead and schedule", "your office is free to book", "they can just go book her"
    "go_ahead": re.compile(
        r"\b(?:can|may|(?:is|are|'s|'re) (?:free|clear|cleared|good|okay|ok|fine|all set) to)\s+"
        r"(?:just\s+|now\s+|already\s+|safely\s+)?(?:go\s+ahead\s+(?:and\s+|with\s+)?|go\s+)?"
        r"(?:schedule|book|proceed|perform|move forward|treat|"
        r"do the (?:procedure|surgery|service|scan|test))\b"
        r"|\bgreen ?light(?:ed)?\b"
        r"|\b(?:an|the) approval(?:'s| is| has been)\s+(?:already\s+)?"
        r"(?:sitting|on|in|there|attached|showing|posted|parked)\b"
        # "there's already an approval parked on her account"
        r"|\b(?:an|the) approval (?:parked|sitting|on file|"
        r"on (?:her|his|their|the) (?:account|file|record|chart))\b"
        # "the one you're after went through fine"
        r"|\b(?:went|gone|got) through(?: (?:fine|okay|ok|clean|cleanly|no problem))?(?=\s*(?:[,.;!]|$))"
    ),
    # "it came back a no", "that one didn't go through"
    "refused": re.compile(
        r"\bcame back (?:as\s+)?(?:a\s+)?(?:no|negative|unfavou?rable|not covered)\b"
        r"|\b(?:didn't|did not) go through\b|\b(?:wasn't|was not|weren't|were not) granted\b"
        # "the plan turned it down", "they won't pay, failed criteria", "dee nide" as a recogniser writes it
        r"|\bturned (?:it|that|this|her|him)(?: one| request)? down\b"
        r"|\b(?:failed|didn't meet|did not meet) (?:the )?criteria\b"
        r"|\b(?:they|we|plan|it) (?:won't|will not) (?:pay|cover)\b|\bdee nide\b"
    ),
    # "that code needs nothing from us", "nothing's required for it"
    "not_needed": re.compile(
        r"\b(?:needs?|requires?) nothing (?:from (?:us|you|the office)|at all|for (?:it|that|this))\b"
        r"|\bnothing(?:'s| is)? (?:needed|required) (?:from (?:us|you)|for (?:it|that|this|the|those|them))\b"
        r"|\b(?:don't|doesn't|do not|does not) need (?:anything|a thing) from us\b"
        # "that code's off the precert list", "nothing needed."
        r"|\b(?:off|not on|isn't on|is not on) (?:the|our) "
        r"(?:precert|pre-cert|prior auth|pa|auth|authorization) list\b"
        r"|\bnothing(?:'s| is)? (?:needed|required)\W*$"
        # "no paperwork needed on our side", "the clinic doesn't have to do a thing", "skips review"
        r"|\bno (?:paperwork|auth|authorization|precert|pre-cert|prior auth|pa|request|review|approval) "
        r"(?:is |'s )?(?:needed|required|necessary)\b"
        r"|\b(?:doesn't|don't|does not|do not) (?:have|need) to do (?:a thing|anything)\b"
        # "we don't pre-authorize those", "her plan doesn't ask for any pre-approval", "not applicable"
        r"|\b(?:don't|dont|doesn't|doesnt|do not|does not|never) "
        r"(?:pre[- ]?authori[sz]e|auth|precert|pre-cert) (?:those|that|these|them|office visits?)\b"
        r"|\b(?:don't|dont|doesn't|doesnt|do not|does not|never) (?:require|ask for|need|get) (?:any |a )?"
        r"(?:pre-?approval|pre-?auth\w*|pre-?cert\w*|prior auth\w*)\b"
        r"|\b(?:prior auth\w*|pre-?auth\w*|precert|authorization) (?:is )?not applicable\b"
        r"|\bno pre ?auth(?:or)?(?: is)?(?: ?ation)?\b"
        r"|\bno pre[- ]?approval (?:(?:on|for|under|with) (?:her|his|their|the|this|that) "
        r"(?:plan|policy|benefit|coverage)|for (?:that|this|those|these|it)(?! (?:request|case|auth)))\b"
        r"|\bno (?:pa|auth|prior auth|precert|pre-cert|authorization) requirement\b"
        r"|\bwithout (?:any |an |a )?(?:approval|auth|authorization|precert|pre-cert|prior auth)\b"
        r"|\b(?:skips?|bypass(?:es)?|exempt from) (?:the )?"
        r"(?:review|prior auth|precert|pre-cert|authorization)\b"
        # "her plan exempts a visit like that from preauthorization"
        r"|\bexempts? (?:[\w'-]+ ){0,5}from (?:the )?(?:review|prior auth\w*|pre-?auth\w*|pre-?cert\w*|"
        r"authorization|pre-?approval)\b"
    ),
    # "the office would need to put a request together first", "nobody's sent anything our way"
    "not_started": re.compile(
        r"\b(?:would|will|'d|'ll|has to|have to|needs? to)\s+(?:need to\s+|have to\s+)?" + _SUBMIT + r"\s+"
        r"(?:in\s+)?(?:a|an|the)\s+(?:new\s+|fresh\s+)?" + _REQUEST + r"\b(?!\s+(?:for the appeal|appeal))"
        r"|\b(?:nobody|no one)(?:'s| has| have)? (?:ever\s+)?(?:sent|submitted|faxed|filed) (?:us |in )?"
        r"(?:anything|a (?:single )?request|any requests?)\b"
        # "zero requests under that code", "nothing ever got sent"
        r"|\b(?:zero|no) (?:requests?|cases?|submissions?) (?:under|for|on)\b"
        r"|\bnothing(?:'s)? (?:ever\s+)?(?:got|was|has been|been) (?:sent|submitted|faxed|filed)\b"
        # "nothing came across for her", "nobody ever faxed us anything", "intake has no request", "no
        # request ever landed here"
        r"|\bnothing (?:ever\s+)?(?:came|come|has come|got) (?:across|in|through)\b"
        r"|\b(?:nobody|no one|anyone) (?:has |have |'s )?(?:ever\s+)?(?:faxed|sent|submitted) (?:us |in )?"
        r"(?:anything|a thing)\b"
        # "there's no request from the office anywhere on her account"
        r"|\bno (?:request|case|submission)s? (?:[\w.'-]+ ){0,5}(?:anywhere )?(?:on|in|under) "
        r"(?:her|his|their|the|this) (?:account|file|record|chart|profile|member)\b"
        r"|\bnothing that (?:anyone|anybody) (?:ever\s+)?(?:sent|faxed|submitted)\b"
        r"|\b(?:has|have|got|is) no (?:request|case|submission)s?\b"
        r"|\bno (?:request|case)s? (?:at all|is available)\b"
        r"|\bno (?:request|case|submission|auth|fax)s? (?:ever\s+)?"
        r"(?:landed|came in|arrived|showed up|got here|reached us|made it)\b"
    ),
    # "we'd want clinicals before any nurse opens it", "nobody's touched it yet"
    "in_progress": re.compile(
        r"\b(?:want|need|needs|require|requires|waiting (?:for|on))\s+(?:the\s+|some\s+|their\s+|more\s+)?"
        r"(?:[\w-]+\s+)?"  # "the chart notes", "updated clinicals"
        + _PAPERS
        + r"\s+(?:before|ahead of|prior to|first)\b"
        r"|\b(?:nobody|no one)(?:'s| has)? (?:touched|looked at|opened|reviewed|picked up) it\b"
        # "it's sitting open because we asked the office for her progress notes"
        r"|\b(?:we|they|reviewer|nurse)(?:'ve| have)? (?:asked|requested|sent for)\b[^.?!]{0,40}\b"
        + _PAPERS
        + r"\b"
        r"|\bhasn't been (?:touched|looked at|opened|picked up)\b"
        # "our nurse hasn't finished reviewing it", "she's still going through it"
        r"|\b(?:hasn't|has not|haven't|have not|didn't|did not|not yet) (?:finished|completed|wrapped up|"
        r"gotten through) (?:reviewing|looking at|going through|the review|her review|his review)\b"
        r"|\b(?:is|'s|are|'re) still (?:reviewing|looking at|going through|working on) "
        r"(?:it|that|this|the case)\b"
        r"|\b(?:hasn't|has not|never) (?:moved|come|gotten|made it) out of (?:clinical |medical )?review\b"
        # "hers hasn't left the nurse's desk", "it's been in his stack since the twelfth"
        r"|\b(?:hasn't|has not|never|not yet) (?:left|come off|gotten off|moved off) (?:the |a |his |her )?"
        r"(?:[\w']+ )?(?:desk|queue|pile|stack|inbox|worklist)\b"
        # "nurse has it", "still got it in her pile", "it's on the reviewer's desk", "in a pend status"
        r"|\b(?:nurse|reviewer|doctor|md|medical director)(?:'s| still)? (?:has|got) it\b"
        r"|\b(?:got|has) it (?:in|on) (?:his|her|their|the) (?:pile|stack|queue|desk)\b"
        r"|\b(?:it's|is|it is) on (?:the|his|her|their) (?:[\w']+ )?desk\b|\bpend(?:ed)? status\b|\bin pend\b"
        r"|\b(?:been|sitting|sits|still) (?:in|on) (?:his|her|their|the|a) (?:[\w']+ )?"
        r"(?:stack|pile|queue|inbox|worklist)\b"
    ),
    # "every buck goes to payroll", "we can barely make rent", "money's the issue"
    "costs_too_much": re.compile(
        r"\b(?:money|cost|price|budget|cash)(?: part| side)?(?:'s| is) (?:the|our) "
        r"(?:main |big |biggest |real )?(?:issue|problem|thing|sticking point|worry|concern)\b"
        r"|\b(?:it's|its) (?:the|about the) money\b|\brunning on fumes\b"
        # "we count every cent", "I can't go upstairs asking for more money"
        r"|\bcount every (?:penny|cent|dollar|buck|pound)\b"
        r"|\b(?:ask|asking|go|going) (?:[\w']+ ){0,2}for more (?:money|budget|funding|cash)\b"
        r"|\b(?:can|could) barely (?:make|cover|pay|afford|keep)\b"
        r"|\bcan't (?:be adding|keep paying|take on|swing) (?:\w+ ){0,2}"
        r"(?:bills?|costs?|fees?|subscriptions?|tools?)\b"
        r"|\bevery (?:penny|buck|dollar|cent)(?:'s| is)? (?:spoken for|goes to|accounted for|already)\b"
        r"|\bno room for (?:yet )?another (?:\w+[- ])?(?:tool|bill|subscription|expense|vendor)\b"
        # "the last quote was sixty a seat, a total non-starter"
        r"|\b(?:quote|quoted|price|pricing|cost)\b[^.?!]{0,80}\b(?:non-?starter|deal-?breaker|deal breaker|"
        r"way (?:too|over) (?:high|much|steep)|too (?:steep|rich|pricey))\b"
    ),
    # "we already pay another outfit for exactly this", "signed a two year deal with ShiftPro"
    "has_a_vendor": re.compile(
        r"\b(?:we've|we have|we) already (?:got|have) one\b|"
        r"\b(?:already|currently) (?:pay|paying|use|using|run|running|do|doing|have|got|gotta)\b"
        r"[^.?!]{0,40}\b(?:for (?:exactly |precisely )?(?:this|that|it)|vendor|outfit|provider|platform|"
        r"system|software|app|tool|thing|service)\b"
        r"|\b(?:paying|pay) (?:\w+ )?to (?:handle|do|run|cover) (?:exactly |precisely )?(?:that|this|it)\b"
        r"|\b(?:signed|renewed|re-signed)\b[^.?!]{0,50}\b(?:deal|term|contract|agreement|year)\b"
        r"|\b(?:under|into|in) (?:a|an) (?:\w+[- ]){0,2}(?:year|month)s?\b[^.?!]{0,10}"
        r"\b(?:contract|agreement|deal|term)\b"
        r"|\b(?:the|our|that) contract runs\b"
        # "we have already a system from other company, paid for three years ahead"
        r"|\b(?:have|got|use|pay) already\b[^.?!]{0,40}\b(?:system|software|vendor|company|tool|provider)\b"
        r"|\bpaid (?:for )?(?:\w+ ){0,2}(?:years?|months?) (?:ahead|in advance|up ?front)\b"
        # "we're on NICE through Q3, and that contract's ironclad"
        r"|\b(?:we're|we are|were) (?:on|with|locked in with|tied to) (?:[\w-]+ ){1,2}(?:through|"
        r"thru|till|until)\b"
        r"|\b(?:contract|agreement|deal)(?:'s| is) (?:ironclad|airtight|locked in|binding)\b"
        # "the till we bought came with a booking module"
        r"|\bcame with (?:a|an|its own|their own) (?:[\w-]+ ){0,2}(?:piece|module|feature|part|tool|function|"
        r"add-on|addon|component|bit|calendar)\b"
        # "Toast does all that for us", "we run all our booking through Dentrix", "we're using Zoho for this"
        r"|\b(?!(?:spreadsheet|whiteboard|calendar|notebook|paper|excel|outlook|it)\b)[a-z]+ "
        r"(?:handles|does|covers|takes care of) (?:all )?(?:of )?(?:that|this|those)(?: stuff)?"
        r"(?:,? [\w ]{0,20})? for us\b"
        r"|\b(?:run|do|book|manage|handle|schedule)s? (?:all |everything )?(?:of )?(?:our|the) "
        r"(?:[\w-]+ ){0,2}(?:through|via) (?!(?:a|the|our|an) )[a-z]+"
        r"|\b(?:we're|we are|we) (?:already )?(?:using|use|pay) "
        r"(?!(?:a|the|an|our|too|more|less|it)\b)[\w-]+ "
        r"(?:for (?:this|that|it|all (?:of )?(?:this|that)|scheduling|rostering|booking)|and it works)\b"
        r"|\b(?:re-?upped|inked|renewed|extended)\b[^.?!]{0,50}\b(?:through|till|until|for)\b"
        r"|\byear \w+ of (?:a|an|our|the) (?:[\w-]+ )?(?:contract|agreement|deal|term)\b"
        r"|\b(?:stuck|locked|tied) (?:in )?(?:with|to|into) (?:[\w-]+ ){1,2}(?:till|until|through|thru)\b"
        r"|\balready (?:put|installed|rolled out|bought|deployed)\b[^.?!]{0,40}"
        r"\b(?:system|software|tool|platform|app)\b"
    ),
    # "six staff and a shared calendar, it does the job", "it'd be overkill", "nothing to schedule"
    "no_need_for_it": re.compile(
        r"\boverkill\b|\bnothing (?:for us |here |really )?to (?:schedule|manage|fix|automate|track|juggle|"
        r"coordinate)\b|\b(?:no|zero|little) (?:call|use|place) for\b"
        r"|\b(?:all )?work the same (?:hours|shift|shifts|schedule|nine to five)\b"
        r"|\b(?:spreadsheet|whiteboard|group chat|shared calendar|paper (?:book|calendar|diary)|notebook|"
        r"in my head|calendar)\b[^.?!]{0,30}\b(?:does the job|works|is enough|is sufficient|handles it|"
        r"is fine|does fine|does us|covers it|does everything|handles what we need|does what we need|"
        r"(?:has )?never (?:once )?let (?:me|us) down)\b"
        # "what would I even schedule?", "nothing here that needs fixing", "I don't see us needing it"
        r"|\bwhat would (?:i|we) even (?:schedule|need|use|do with)\b"
        r"|\bnothing (?:here |for us )?(?:that )?needs (?:fixing|solving|changing)\b"
        r"|\b(?:don't|do not|can't|cannot) see (?:us|we|myself) (?:needing|using)\b"
        r"|\b(?:does the job|works|is (?:enough|sufficient)|handles it|covers it)\b[^.?!]{0,20}\bfor us\b"
        # "same hours every day, nobody's shifts ever change"
        r"|\b(?:nobody's|no one's|our|the) (?:shifts?|schedules?|hours|rota) "
        r"(?:(?:never|rarely|don't|doesn't|ever|really) )?(?:ever )?(?:change|changes|move|moves)\b|"
        r"\bsame (?:hours|shifts?|schedule) every "
        r"(?:day|week)\b"
    ),
    # "we're mid-launch, the timing's terrible", "neck deep in our annual audit"
    "bad_timing": re.compile(
        r"\b(?:mid|middle of|halfway through|in the middle of|neck deep in|knee deep in|buried in|"
        r"underwater with)"
        r"[- ](?:(?:a|an|the|our)\s+)?(?:\w+[- ]){0,2}?(?:cutover|launch|migration|move|moving|audit|rollout|"
        r"renovation|season|close|count|inventory|busy period)\b"
        r"|\b(?:timing|time)(?:'s| is) (?:lousy|terrible|bad|awful|rough|horrible|not great|off)\b"
        r"|\b(?:worst|busiest) (?:possible )?(?:week|month|season|time)\b"
        r"|\b(?:crazy|busy|peak|slammed|rush|tax|harvest|holiday|pick|picking|planting|flu|wedding) "
        r"(?:season|time)\b|\byear[- ]end close\b"
        r"|\b(?:crazy|slammed|swamped|nuts|insane|mad|chaos|flat out|rammed)\b[^.?!]{0,15}"
        r"\b(?:until|till|through|to)\b"
        r"|\b[\w-]+ season\b[^.?!]{0,40}\b(?:flat out|swamped|slammed|busy|rammed|crazy|nuts)\b"
        # "after Christmas, give me a holler in January", "try me again once she's started"
        r"|\b(?:after|until|till|once) (?:christmas|chris mass|the new year|new year's|new year|the holidays|"
        r"easter|thanksgiving|the summer|summer|launch|the launch|go-live)\b"
        r"|\b(?:try|call|ring|reach out to|holler at|bell) (?:me|us) (?:again |back )?(?:once|after|when|in "
        r"(?:january|february|march|april|may|june|july|august|september|october|november|december|"
        r"the new year))\b"
        r"|\b(?:cutting|switching|moving|changing) (?:[\w-]+ ){0,3}over to\b"
        r"|\b(?:we're|we are|were) (?:moving|gutting|renovating|rolling out|launching|switching|swapping|"
        r"migrating|replacing|changing|upgrading|mid|in the middle of|in the thick of)\b[^.?!]{0,50}"
        r"\b(?:until|till|through|this month|this week|right now)\b"
    ),
}


def told_value(text: str, meanings: Mapping[Outcome, str] | Mapping[Objection, str]) -> str | None:
    """The value of the last meaning ``text`` tells, of those the slot maps; None if none."""
    norm = normalise(text)
    found: list[tuple[int, str, Outcome | Objection]] = []
    for meaning, value in meanings.items():
        for match in _PATTERNS[meaning].finditer(norm):
            if not negated(norm, match.start()):
                found.append((match.start(), value, meaning))
    if any(meaning == "not_needed" for _, _, meaning in found):
        # nothing was needed, so of course the office can go ahead: "needs nothing from us, just book her"
        found = [f for f in found if f[2] != "go_ahead"]
    return max(found)[1] if found else None
