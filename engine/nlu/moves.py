"""The everyday moves of a phone call, heard in their general forms whatever a schema's phrases
and examples cover: putting the caller on hold, asking to be called back, saying goodbye, saying
the person called has gone ("Mr. Baker is no longer with us"), asking never to be called again,
turning the offer down, sending the call to another department, not knowing what was asked,
wanting a person on the line now, being ready to be told, finding a record or not.

A schema offers these moves as intents with standard names (``STANDARD_NAMES``); a cue here
names the move, and the state's intent of that name (if it offers one) takes the turn only when
nothing else was understood, or, for a way out, when the only other reading is a hold or a free-text
answer (``understand._everyday_move``).
"""

from __future__ import annotations

import re
from collections.abc import Collection
from functools import lru_cache

from engine.nlu.text import normalise

# at the turn's start, before anything else is said: "a moment, I'm opening my calendar",
# "kindly stay connected", "please to hold sir" (Indian English), "let me just check"
_HOLD = re.compile(
    # at the turn's start or a sentence's: "Happy to check. Hang tight, …"
    r"(?:^|(?<=[.!?] ))"
    r"(?:(?:okay|ok|alright|so|sir|ma'am|madam|kindly|please|just|yes|yeah|sure|one|hmm|sorry)[,.]?\s+){0,3}"
    r"(?:(?:a|one|just a|just one|two) (?:moment|sec|second|minute|min|jiffy)s?|please (?:to )?hold|"
    r"hold please|(?<=kindly |please )(?:wait|hold)\b|"
    r"(?:stay|be|remain|wait) (?:on the line|connected|with me|online)|hold the line|"
    r"(?:could|can|would) you (?:please )?"
    r"(?:wait|hold)|(?:wait|hang on|hold on) (?:a|one|just a|just one) (?:moment|sec|second|minute|min)|"
    r"hang tight|hold tight|(?:give|gimme) (?:me )?(?:a|one|two) (?:moment|sec|second|minute|ticks?)|"
    r"(?:please )?(?:don't|do not) (?:go anywhere|hang up)|(?:let me|lemme) (?:go )?(?:grab|get|fetch|find) "
    r"(?:him|her|them))\b"
    r"|^(?:\w+\W+){0,2}?(?:hang about|(?:let me|lemme) step (?:out|outside|away))\b"  # "hang about, …"
    r"|\b(?:stay|hold) on\W*$"  # "… let me ask my supervisor, stay on"
    r"|\b(?:to|please|kindly) (?:wait|hold) (?:for )?(?:a|one|just a) (?:moment|sec|second|minute)\b"
    r"|(?:^|[.!?]\s+)(?:just )?(?:a|one) (?:moment|sec|second)\W*$"  # "… I'll check the rota. Just a moment."
    r"|(?:^|[.!?]\s+)(?:please )?hold(?: please)?\W*$"  # "Keying it in. Hold."
    # anywhere in the turn: "stay put, I'll page him", "placing this call on a brief hold"
    r"|\b(?:stay with me|stay put|keep the line|two shakes|hold that thought|hang about|"
    r"it's for you|my other line(?:'s| is) (?:ringing|blinking|flashing|lit|going)|"
    r"allow me a (?:moment|minute|second)|give me a (?:sec|second|moment|minute) to|"
    r"(?:placing|place|put|putting|pop|popping|stick|sticking|keep|keeping) (?:you|this call|the call) "
    r"on (?:a )?(?:\w+ )?hold|(?:keep|keeping) you (?:holding|waiting)|"
    r"(?:let me|lemme) (?:switch|flip) (?:tabs|screens)|"
    r"(?:let me|lemme|i'll|i will|i'm gonna|i'm going to) (?:go )?(?:grab|get|fetch|page) (?:him|her|them)|"
    r"(?:stay|wait|hang on|hold on) (?:right )?there|(?:handing|passing|giving) (?:you|the phone|this) "
    r"(?:over )?to (?:him|her|them|my|our)|"
    r"(?:don't|do not) hang up)\b"
)
# asking to be reached again later: "call after some time", "circle back with me in October",
# "can we reconnect another day", "reach me again in January"
_CALL_BACK = re.compile(
    r"\b(?:(?:call|ring|phone|dial|redial|try|trying|reach(?: back)?(?: out)?|contact|email|catch|"
    r"holler(?: at)?|buzz|bell|shout(?: at)?|revert(?: back)?) "
    r"(?:me |us |him |her |them )?(?:back |again |once more )?"
    r"(?:after|later|sometime|this arvo|round|"
    r"in (?:a|an|the|january|february|march|april|may|june|july|august|"
    r"september|october|november|december|q[1-4])|around|another|some other|next|tomorrow|tonight|"
    r"day after tomorrow|first thing|this (?:evening|afternoon)|then\W*$|"
    r"(?:on )?(?:monday|tuesday|wednesday|thursday|friday)|(?:in |on )?(?:january|february|march|april|june|"
    r"july|august|september|october|november|december)\b)|"
    # "phone me once the audit's over", "call us when January's underway"
    r"(?:call|ring|phone|buzz|try|reach|contact) (?:me|us) (?:back |again )?(?:once|when)\b|"
    r"give (?:it|this|me|us) another (?:shot|go|try|ring|call)\b|"
    # "Friday after ten I'm free, give it a go then?"
    r"give (?:it|this|me|us) a (?:go|shot|try) (?:then|on|tomorrow|next|later|after|around)\b|"
    r"circle back|reconnect|touch base (?:later|another|next|in)|"
    # "after our year closes in March, that time you can call"
    r"(?:that|which) time,? (?:you )?(?:can |may |please |kindly )?call\b|"
    # "I've gotta run, could we finish this Friday?": leaving now, to be reached again
    r"(?:gotta|got to|have to|need to) (?:run|jump|dash|bolt|scoot|fly)\b(?! (?:it|this|that|the|a|some)\b)|"
    r"give (?:me|us) a (?:ring|call|shout|buzz|bell|holler) "
    r"(?:once|when|after|in|next|later|around|tomorrow)|"
    r"pick (?:this|it) (?:back )?up (?:another|later|tomorrow|next)|"
    r"(?:flick|send|shoot|drop|fire) (?:me|us) (?:over )?an? (?:email|e-mail|text|note|brochure)|"
    r"(?:email|e-mail) (?:me|us) (?:a|an|some|the|your) (?:one[- ]pager|brochure|info|information|deck|"
    r"overview|summary|details|pdf|something)\b|"
    r"(?:another|some other) (?:day|time) "
    r"(?:maybe|perhaps|please)?\W*$)"
)
# closing the call at the turn's end: "thanking you, take care, bye", "have a pleasant day"
_GOODBYE = re.compile(
    r"(?:\b(?:bye(?:[- ]bye)?|goodbye|good day|take care(?: of yourself)?|take it easy|ta[- ]?ra|cheerio|"
    r"that's (?:me|us) done(?: then| here)?|"
    r"enjoy (?:your|the) (?:day|afternoon|evening|weekend|morning)|"
    r"have an? (?:good|great|nice|pleasant|lovely|wonderful|blessed|fine) (?:day|one|evening|afternoon|"
    r"weekend|morning))|thanks for (?:your|the) call)\W*$"
)
# the person called has gone (names arrive as "that person", ``understand.without_names``)
_BUSINESSES = (
    r"(?:practice|business|company|shop|firm|store|clinic|bakery|restaurant|salon|cafe|garage|gym|studio|"
    r"agency|place|franchise)"
)
_GONE = re.compile(
    r"\bthat person(?:'s)? (?:(?:sir|madam|ma'am|ji|sahib) )?"
    r"(?:(?:has|had|is|was) )?(?:(?:no longer|not) (?:with|at|working|employed|reachable|"
    r"here|part of)|(?:has not|hasn't|had not|hadn't) been (?:with|at|here|part of)|left|retired|"
    r"transitioned out|moved on|moved (?:out |away |over )?to|passed away|quit|resigned|jumped ship|"
    r"transferred to|"
    r"relocated|"
    r"(?:not in|out of (?:the )?office|away|off (?:at|on|sick)|on (?:leave|vacation|holiday|pto))(?! on)|"
    r"sold (?:us |me )?(?:the|his|her|their) (?:[\w-]+ )?" + _BUSINESSES + r")\b"
    r"|\b(?:i|we)(?:'ve| have)? (?:inherited|took over) (?:his|her|from him|from her)\b"
    r"|\bthat person's old (?:extension|line|number|desk|office)\b"
    r"|\b(?:he|she|that person) (?:passed|handed|turned) (?:this|the|his|her) (?:desk|role|job|accounts?|"
    r"portfolio|position|territory|seat)(?: over)? to me\b"
    r"|\b(?:he|she) (?:has |had |'s )?(?:moved on|retired|resigned|quit)\b"
    r"|\b(?:i|we) bought (?:it|the (?:\w+ )?(?:place|business|company|shop|store|warehouse|clinic|restaurant|"
    r"practice|firm)) from (?:him|her|them|that person)\b"
    r"|\b(?:he|she) (?:sold|handed over|handed|gave|passed on|left) (?:us |me )?(?:the|his|her) (?:[\w-]+ )?"
    + _BUSINESSES
    + r"\b"
)
# the call belongs elsewhere: "transferring your call to the concerned team", "you'll get sent
# over", "medical precert sits on a separate phone tree", "we only handle claims on this queue"
_DESKS = "(?:claims|eligibility|billing|benefits|pharmacy|vision|dental)"
_TRANSFER = r"(?:transfer|rout|bounc|forward|send|flip|patch|push|mov|kick|pass|shift|switch|connect)\w*"
_THE_CALL = r"(?:you|your call|the call|this call|this one)"
_ELSEWHERE = re.compile(
    rf"\b(?:(?:{_TRANSFER}|put) {_THE_CALL}"
    r"(?: over| through| across| along)? to (?:the )?(?:right|correct|concerned|proper|appropriate|other)\b|"
    rf"{_TRANSFER} {_THE_CALL} (?:over|through|across|along)\b|"
    # "let me flip you to the medical folks", "I'll send your call along to the adjuster's line"
    rf"{_TRANSFER} {_THE_CALL}(?: over| across| along)? to (?:the |our |a )?(?:[\w']+ ){{0,3}}"
    r"(?:folks|people|team|line|desk|unit|department|queue|side|nurse|nurses|vendor)\b|"
    # "flipping you to eligibility right now", "routing you to intake this minute"
    rf"{_TRANSFER} {_THE_CALL} to (?:the |our )?[\w']+(?: [\w']+){{0,3}} (?:right |this )?"
    r"(?:now|this (?:second|minute|instant)|right away|as we speak)\b|"
    r"(?:you'll|you will|you'd|you'll need to|you need to) (?:get|be) (?:sent|transferred|routed|bounced) "
    r"(?:over|to)\b|(?:separate|different|another|other) (?:phone tree|queue|department|desk|unit)\b|"
    rf"(?:we|i) (?:only|just) (?:handle|do|take) {_DESKS}\b|(?:handling|doing|taking) only {_DESKS}\b|"
    r"\bdesk only\b|"
    # "not my department", "imaging auths belong to the vendor", "that's delegated to our imaging partner"
    r"(?:not|isn't|is not) (?:my|our|this) (?:department|desk|queue|team|unit|area)\b(?!')|"
    r"(?:belongs?|sits?|goes|go|lives?) (?:to|with) (?:the|a|another|a separate|a different) "
    r"(?:[\w-]+ )?(?:vendor|department|unit|queue|desk)\b|"
    r"(?:delegated|carved out|outsourced) to\b)"
    r"|\btransferring(?: you| your call)?(?: now| over)?\W*$"
    # "I'm routing you there now", "I'll route you to intake, they'll set it up"
    rf"|\b{_TRANSFER} {_THE_CALL} (?:over )?there (?:right )?now\b"
    rf"|\b(?:i'm|i am|i'll|i will) (?:\w+ )?(?:{_TRANSFER}|put) {_THE_CALL} (?:over |through |across )?to "
    r"(?!(?:my|a|the|our) (?:supervisor|manager|lead|team lead|senior|colleague|boss)\b)"
    r"(?:(?:the |our )?[\w']+|\W*$)"  # (a desk's initials may be taken for a filler: "to UM")
)
# never to be called again, in the words of law and of temper: "I withdraw any consent to contact
# me", "this line is on the no-call registry", "purge this number", "yank our shop from your sheet"
_DO_NOT_CALL = re.compile(
    r"\b(?:opt(?:ing)? out|opted out|withdraw\w* (?:my |our |any |all )?consent|cease (?:all |any )?contact|"
    r"(?:no|do not)[- ]call (?:list|registry)|"
    r"(?:delete|remove|purge|erase|scrub|yank|strike|wipe|lose)\w* (?:this|my|our|the) "
    r"(?:number|line|phone|shop|firm|company|business|office|practice|details|info|cell|mobile|contact)\b|"
    r"(?:delete|remove|purge|erase|scrub|yank|strike|wipe|take)\w* (?:us|me) (?:off|from|out of)\b(?! hold)|"
    r"get (?:us|me|this (?:line|number)) (?:out of|off) (?:it|that|your|the)\b|"
    r"\b(?:neither|nor|no one|nobody|never)\b[^.?!]{0,60}\bcontacted\b[^.?!]{0,40}\bagain\b|"
    # "I'd appreciate it if nobody from your company phoned this office again"
    r"\b(?:no one|nobody) (?:from|at|with) (?:your|you)\b[^.?!]{0,30}"
    r"\b(?:phoned|called|rang|phones|calls|rings|contacts|contacted|reached out)\b[^.?!]{0,30}\bagain\b|"
    r"(?:get|take|keep) (?:this|my|our|the) (?:number|line|phone|cell|mobile) (?:out of|off) (?:your|the)\b|"
    r"(?:purged|deleted|removed|erased|scrubbed|wiped) from (?:your|the|that)\b|"
    # "I'd rather this line didn't get rung by you folks anymore", "cross it off for good"
    r"(?:didn't|don't|not|never) (?:get |be )?(?:rung|called|phoned|dialed|contacted) by (?:you|your)\b|"
    r"cross (?:it|us|me|this|that|the number|this number|my number|our number) off\b|"
    # "whatever list this number is on, scrub it"
    r"\b(?:list|database|dialer|records)\b[^.?!]{0,40}\b(?:delete|remove|purge|erase|scrub|strike|wipe|cross)"
    r"\w* (?:it|us|me|that|this|the number|my number|our number)\b)"
)
# turning the offer down for good: "we'll pass", "count us out", "I'll let you go"
_NOT_INTERESTED = re.compile(
    r"\b(?:(?:we'll|i'll|we will|i will|we're gonna|i'm gonna|we'd) (?:have to )?pass|hard pass|"
    r"(?:we're|we are|i'm|i am) done (?:shopping|looking)(?: around)?|"
    # "so I'll decline, with thanks", "let's leave it there", "we won't be revisiting it"
    r"(?:i'll|i will|we'll|we will|i must|we must|i have to|we have to|i'd|we'd|i'm going to) "
    r"(?:\w+ )?decline|(?:let(?:'s| us)|(?:we|i)(?:'ll| will| can)|and|just) leave it"
    r"(?: (?:there|here|at that)|(?=\W*$))|"
    r"(?:won't|will not|not) be revisiting|"
    # "I don't think this is for us after all"
    r"(?:don't|do not) (?:think|believe|feel) (?:this|it|that)(?: is|'s) (?:really )?"
    r"(?:for us|for me|a fit)\b|"
    r"nothing (?:for us |here )?to discuss|"
    # "we're sticking with the paper book": staying with what they have
    r"(?:we're|we are|we'll|we will|i'm|i am|i'll|i will) (?:just )?"
    r"(?:sticking|staying|stick|stay)(?: put)? with "
    r"(?:the|our|my|what)\b|"
    r"(?:don't|do not) (?:think|believe) (?:this|it|that)(?: is|'s) something "
    r"(?:we|i)(?:'ll| will|'d| would) (?:pursue|need|want|use)|"
    r"count (?:us|me) out|i'll let you go|talked myself out of|we're done here|"
    # a polite no: "I will think and tell you", "our clinic does not need that kind of software"
    r"(?:i|we)(?:'ll| will) think and (?:tell|let) you\b|"
    # "we're sorted on that front", "I can't see us buying", "I don't want to book anything"
    r"(?:we're|we are) (?:all )?(?:sorted|covered|set) (?:on that front|for that|there|on that)\b|"
    r"(?:can't|cannot|don't|do not) see us (?:buying|signing|going ahead|using|switching)\b|"
    r"(?:don't|do not) want to (?:book|schedule|buy) anything\b|"
    r"(?:does not|doesn't|do not|don't) need (?:that|this|any) (?:kind|type|sort) of\b|"
    # "don't waste your breath", "I doubt we'll actually act on it"
    r"(?:don't|do not) waste your (?:breath|time)|(?:i|we) doubt (?:we|i)(?:'ll| will| would|'d) "
    r"(?:\w+ )?(?:act on|buy|go ahead|use|need|pursue)\b|"
    r"(?:will not|won't|are not|aren't|not going to) (?:go|move) (?:forward|ahead)|"
    r"(?:will not|won't|not going to) (?:pursue|proceed with) (?:this|it|that)|forget it|"
    r"(?:we're|we are) not (?:doing|doin'?) (?:this|it|that)|"
    # calling the meeting off: "just cancel it", "I'll have to cancel"
    # "I'd rather we stop here", "I can't see this getting through our process"
    r"(?:i'd|we'd|i would|we would) rather (?:we )?(?:stop|end|leave it|wrap (?:it|"
    r"this) up)(?: here| there)?|"
    r"(?:can't|cannot|don't|do not) see (?:this|it|that) (?:getting|going|making it) "
    r"(?:through|anywhere|forward|past)\b|"
    r"(?:don't|do not) (?:think|see) (?:we|i)(?:'ll| will|'d| would) (?:pursue|proceed with|"
    r"move forward with|"
    r"go ahead with|buy|need) (?:this|it|that)|"
    r"(?:there's|there is) no point\b(?! (?:in )?(?:calling|ringing|waiting|holding))|"
    r"(?:(?:just|have to|gonna|going to|please|kindly|let's|let us|can we|could we|should we) "
    r"|^|(?<=[.!?,] ))"
    r"cancel(?: it| that| the (?:meeting|call|demo))?|"
    # "we are not going for this", "requirement is not there", "this is not required for us"
    r"(?:we're|we are|i'm|i am) not going (?:for|with|ahead with) (?:this|it|that)|"
    r"requirement is not there|no requirement (?:is )?there|"
    r"(?:this|it|that)(?: is|'s) not (?:at all )?(?:required|needed|necessary) for (?:us|me))\b"
    r"|\bkill it\W*$"
)

# only the party the call is for may ask: "her doctor's front desk has to ring us direct", "we
# release PHI to the practice alone", "we don't hand member details to billing companies"
_PLACE = r"(?:office|practice|clinic|front desk|staff|provider|physician|doctor)"
_SHARE = r"(?:release|give|disclose|share|talk|speak|discuss|divulg|provid)"
_ONLY_THE_PRINCIPAL = re.compile(
    rf"\b{_PLACE}(?:'s)?(?: own| itself| themselves)?(?: staff| front desk)?\b[^.?!]{{0,25}}"
    r"\b(?:has to|have to|must|needs? to|will need to|should|gotta|has got to)\s+(?:\w+\s+)?"
    r"(?:call|ring|phone|contact|reach out|dial|ask|request)\b"
    rf"|\b{_PLACE}(?:'s)?(?: own)?(?: staff| front desk)? (?:i|we) (?:only )?(?:{_SHARE}|deal|work)\w*"
    rf"|\bhave (?:the|her|his|their|them|(?:\w+ )?\w+'s) (?:\w+ )?{_PLACE}\b[^.?!]{{0,10}}"
    r"\b(?:call|ring|phone|contact|reach)\b"
    rf"|\b{_SHARE}\w*\b[^.?!]{{0,25}}\b(?:only|solely|exclusively)\b[^.?!]{{0,25}}\b{_PLACE}"
    rf"|\b(?:only|solely|exclusively)\b[^.?!]{{0,15}}\b{_SHARE}\w*\b[^.?!]{{0,30}}\b{_PLACE}"
    rf"|\b(?:only|solely|exclusively)\b[^.?!]{{0,40}}\bwith (?:the |her |his |their |a )?(?:[\w']+ )?{_PLACE}"
    rf"|\bonly (?:the |her |his |their |your )?(?:\w+ )?{_PLACE}(?:'s)?(?: staff| front desk)?"
    r" (?:can|may|is allowed to|are allowed to|gets? to)\b"
    rf"|\b{_PLACE}(?:'s)? (?:\w+ )?(?:alone|only|exclusively)\b"
    r"|\b(?:don't|do not|can't|cannot|won't|not|never)\s+(?:\w+\s+){0,2}"
    rf"(?:{_SHARE}\w*|hand|walk|go over|read|send|fax)\b[^.?!;]{{0,40}}"
    r"\b(?:billing|billers|vendors?|third part(?:y|ies)|outside|agenc(?:y|ies))\b"
)

# not knowing the answer asked for: "no clue", "couldn't tell you", "he gets to them when he gets
# to them", "depends what the merger leaves us"
_DONT_KNOW = re.compile(
    r"\b(?:no (?:clue|idea|notion|telling)|not a (?:clue|notion)|"
    r"(?:haven't|have not|don't have|hasn't) (?:got )?(?:a|the (?:faintest|foggiest|slightest|first)) "
    r"(?:clue|idea)|(?:couldn't|can't|cannot|could not|can not) (?:tell|say)(?: you)?"
    r"(?! (?:the|her|his|that|this|what|which|it)\b)|(?:don't|do not|didn't|did not) know\b|"
    r"dunno|beats me|who knows|your guess is as good|no (?:way of|way to) (?:knowing|telling)|hard to say|"
    r"(?:gets?|come|comes) (?:to|round to|around to) (?:it|them|those|that) when (?:he|she|they|we|i) "
    r"(?:gets?|come|comes)|depends (?:on )?(?:what|how|whether|when)|"
    r"(?:couldn't|can't|cannot|could not) (?:begin to |even )?guess|"
    r"(?:couldn't|can't|cannot|could not) (?:begin to|even) (?:tell|say)\b|"
    # no money for it: "zero right now, this wasn't in the plan"
    r"(?:wasn't|wasnt|was not|isn't|isnt|is not|'s not|never) (?:in|part of) (?:the|this year's|our|my) "
    r"(?:plan|budget|forecast)\b|which is (?:nothing|zero|zilch)\b|^\W*zero(?: dollars)?(?: right now|"
    r" at the moment| for now)?\b|"
    r"(?:can't|cannot|couldn't) (?:commit|promise)|"
    r"(?:date|column|field|box|section)(?:'s| is) (?:still )?(?:empty|blank)|"
    r"nothing (?:there|in there|on there|entered|listed|posted) yet|"
    r"nothing (?:goes|gets put|gets entered|is entered) in (?:that|the|this) (?:box|field|column|date)|"
    r"(?:can't|cannot|couldn't|could not) put a (?:decision )?(?:date|time|day|timeframe) on it|"
    # "for software, nobody's earmarked a dime": no money set aside, so no budget to tell
    r"(?:nothing|nobody(?:'s| has)?|no one(?:'s| has)?) (?:been )?"
    r"(?:earmarked|set aside|budgeted|allocated|put by|put aside|saved)|"
    r"(?:earmarked|set aside|budgeted|allocated) (?:nothing|zero|not a (?:dime|penny|cent|dollar)))"
)

# wanting a person on the line now: "is the specialist free to jump in this minute?", "anybody who
# could hop on with me right away?"
_SOMEONE_NOW = re.compile(
    r"\b(?:specialist|expert|someone|somebody|anybody|anyone|one of (?:them|your \w+)|a human|a person|"
    r"a real person|a rep)\b[^.?!]{0,40}\b(?:jump|hop|get|come|join)(?: in| on)?\b[^.?!]{0,30}"
    r"\b(?:now|this minute|this second|right away|immediately|while i have you)\b"
)

# ready to be told: "I'm all ears", "screen's up, walk me through it", "fire off the details"
_READY = re.compile(
    r"\b(?:(?:i'm|i am|we're) all ears|lay it on me|walk me through (?:it|this)|let's hear it|"
    r"fire (?:off|away)|whenever (?:you're|your|you are) (?:ready|set)|start (?:wherever|whenever|talking)|"
    r"what(?:cha| have you) got|please proceed|(?:carry|go) on with (?:the|your|her|his)\b|"
    r"(?:^|(?<=[,.!] ))(?:okay |ok |right |yes |yeah |sure )?carry on\b(?! with)|shoot(?: whenever|"
    r" when ready)|(?:screen|system|module|"
    r"lookup)(?:'s| is) (?:up|open)|"
    r"(?:i'm|i am) (?:all )?(?:set|ready)(?: (?:here|now|on my end|from my side))?(?=\W*(?:$|[,.!])))"
)
# the record asked about was not found, or is not active: "it comes back blank every time", "her
# coverage stopped new year's eve", "that ID brings up a man in his sixties, not her"
_NOT_FOUND = re.compile(
    r"\b(?:no (?:such|matching) (?:person|member|enrollee|patient|subscriber)|"
    r"(?:nothing|nobody|no one|nothing's) (?:is )?"
    r"(?:returning|coming up|comes up|matching|matches|turns up|found)|"
    r"turn(?:s|ed)? up (?:nobody|nothing|no one)|come?s? back (?:blank|empty)|"
    r"(?:coverage|eligibility|policy)(?: \w+)? (?:stopped|ended|terminated|termed|lapsed)|"
    r"(?:not|isn't|is not|no longer) (?:one of ours|ours|an active member|a member|active|eligible)|"
    r"no (?:records?|results?|matches|members?|hits?) (?:are |is )?(?:coming|showing|found|returned)|"
    r"(?:zero|no) (?:hits|results|matches)\b|"
    r"(?:neither|none) (?:one|of them)? ?(?:brings|pulls|turns) (?:anybody|anyone|anything|her|him) up|"
    r"(?:brings|pulls|turns) (?:nobody|no one|nothing) up|"
    r"(?:got|get|getting) (?:zip|nada|zilch|diddly)\b|\b(?:nada|zilch)\b|"
    r"nothing (?:is |'s )?active|no active (?:coverage|policy|plan|eligibility|enrollment)|"
    r"(?:was|were) with us (?:until|till|through|up to)|"
    r"disenrolled|(?:taken|dropped|removed|kicked|fell|fallen) off (?:it|the (?:policy|plan|group|coverage)|"
    r"(?:back )?in|on|as of|back|last|this)\b|"
    r"(?:don't|doesn't|does not|do not) (?:exist|match|line up)|(?:get|getting|got) nothing|"
    r"not (?:her|him)\b)"
)
# the record was found and is active: "she's one of ours", "name and DOB line up", "member's active"
_FOUND = re.compile(
    r"\b(?:one of ours|on our books|our (?:gal|guy|girl|member)|pulls (?:right |straight )?up|"
    r"active (?:through|thru|till|until|to the end of)\b|"
    r"brings? up (?:that person|her|him|the (?:member|patient|right))|ha(?:s|ve) (?:active )?coverage|"
    r"in force|(?:all|everything|particulars|details) (?:\w+ )?(?:are |is )?matching|"
    r"got that person(?: right)? here|(?:^|[.!] )active(?=\W*$)|"
    r"(?:it's|its|that's) (?:her|him|that person)(?= (?:go|alright|all right|okay|ok|yes|yeah)\b|\W*$)|"
    r"(?:lines?|lined) up|(?:is |'s |are )?(?:a )?match(?:es)?\b|agree with (?:my|our)|"
    r"(?:eligibility|coverage|policy|member|enrollee)(?:'s| is)? (?:is )?"
    r"(?:active|good|valid|verified|showing|live|current|in effect)|"
    # "the card ID checks out"
    r"(?:id|number|card|dob|birthday|birth date|date of birth|details|info)(?:'s| is)? (?:all )?"
    r"(?:checks?|checked|checking) out)"
)

HOLD, CALL_BACK, GOODBYE, GONE = "hold", "call_back", "goodbye", "gone"
DO_NOT_CALL, NOT_INTERESTED, ELSEWHERE = "do_not_call", "not_interested", "elsewhere"
DONT_KNOW, SOMEONE_NOW = "dont_know", "someone_now"
READY, FOUND, NOT_FOUND = "ready", "found", "not_found"
PRINCIPAL_ONLY = "principal_only"
# the intent names schemas give these moves, in the order a state's names are looked up
STANDARD_NAMES = {
    HOLD: ("hold",),
    CALL_BACK: ("call_back_later", "busy"),
    GOODBYE: ("goodbye",),
    GONE: ("wrong_person",),
    DO_NOT_CALL: ("do_not_call",),
    NOT_INTERESTED: ("not_interested",),
    ELSEWHERE: ("wrong_department",),
    DONT_KNOW: ("dont_know", "no_date", "no_budget"),
    SOMEONE_NOW: ("wants_specialist_now", "wants_human"),
    READY: ("ready",),
    PRINCIPAL_ONLY: ("wants_the_office",),
    FOUND: ("member_found", "record_found"),
    NOT_FOUND: ("member_not_found", "record_not_found"),
}
# a way out for good first ("hold on, I'm opting out"), then the others
_HEARD_IN_ORDER = (
    (DO_NOT_CALL, _DO_NOT_CALL),
    (GONE, _GONE),
    (NOT_INTERESTED, _NOT_INTERESTED),
    (PRINCIPAL_ONLY, _ONLY_THE_PRINCIPAL),
    (ELSEWHERE, _ELSEWHERE),
    (HOLD, _HOLD),
    (CALL_BACK, _CALL_BACK),
    (GOODBYE, _GOODBYE),
    (DONT_KNOW, _DONT_KNOW),
    (SOMEONE_NOW, _SOMEONE_NOW),
    (NOT_FOUND, _NOT_FOUND),  # "the ID matches, the name doesn't": not found
    (FOUND, _FOUND),
    (READY, _READY),
)


def heard_move(utterance: str) -> str | None:
    """The everyday move the turn makes, if its general form is heard (``utterance`` with the
    called person's names already said as "that person"); the first of ``_HEARD_IN_ORDER``."""
    text = normalise(utterance)
    return next((move for move, cue in _HEARD_IN_ORDER if _heard(move, cue, text)), None)


# "the database one guy built years ago, and he retired": "he" is someone the turn just named
_SOMEONE_NAMED = re.compile(
    r"\b(?:guy|man|woman|lady|fellow|bloke|chap|gal|developer|contractor|consultant|someone|somebody)\b"
    r"[^.?!]{0,80}$"
)


def _heard(move: str, cue: re.Pattern[str], text: str) -> bool:
    for match in cue.finditer(text):
        said_of_another = (
            move == GONE
            and match.group(0).startswith(("he ", "she "))
            and _SOMEONE_NAMED.search(text, 0, match.start()) is not None
        )
        if not said_of_another:
            return True
    return False


# back from a hold within the turn: "give us a tick … right, sorry about that. Job sheets go missing"
_BACK = re.compile(
    r"\b(?:sorry about that|sorry for the wait|sorry to keep you(?: waiting)?|thanks for (?:holding|waiting)|"
    r"i'm back|i am back|where was i|where were we)\b[\s.,!]*",
    re.IGNORECASE,
)
_ANSWER_WORDS = 3  # what follows the return must be something to go on


def after_a_hold(utterance: str, hold_phrases: tuple[str, ...] = ()) -> str:
    """What the caller said after coming back from a hold within the turn (the answer, when the
    hold is heard before the return: the general form or one of ``hold_phrases``), else the turn."""
    out = utterance
    for match in _BACK.finditer(utterance):
        before, rest = normalise(utterance[: match.start()]), utterance[match.end() :]
        held = _HOLD.search(before) or (hold_phrases and _any_of(hold_phrases).search(before))
        if held and len(rest.split()) >= _ANSWER_WORDS:
            out = rest
    return out


@lru_cache(maxsize=64)
def _any_of(phrases: tuple[str, ...]) -> re.Pattern[str]:
    return re.compile(r"\b(?:" + "|".join(re.escape(normalise(p)) for p in phrases) + r")\b")


# the caller returns to an answer given (or skipped) before: "going back to the money thing",
# "budget-wise", "I undersold the budget earlier", "I said spring, but"
_GOES_BACK = re.compile(
    r"\b(?:going back to|go back to|(?:money|budget|cost|price|spend)[- ]?wise|undersold|"
    r"oversold|lowballed|earlier i said|i said [\w' ,]{1,40}\bbut\b)"
)


def goes_back(utterance: str) -> bool:
    """Whether the turn returns to an earlier question to answer or correct it."""
    return _GOES_BACK.search(normalise(utterance)) is not None


def call_back_asked_at(utterance: str) -> int | None:
    """Where (in the normalised turn) the caller asks to be called back, if they do."""
    match = _CALL_BACK.search(normalise(utterance))
    return None if match is None else match.start()


def move_intent(utterance: str, offered: Collection[str]) -> str | None:
    """The name of the state's intent for the move heard in the turn, if the state offers one."""
    move = heard_move(utterance)
    if move is None:
        return None
    return next((name for name in STANDARD_NAMES[move] if name in offered), None)
